import Foundation
import ModelManager
import ServingCore

/// The model index at `/$baseUrl/`: one member per model folder, plus `_server` for the server itself
/// (README, "HTTP API").
///
/// Model names start with a letter, so the underscore-prefixed `_server` never collides with one (as
/// `_errors` in `/all`). Every documented member is present; one without a value is `null`.
struct IndexDocument: Encodable {
    var models: [String: Model]
    var server: Server

    init(_ snapshot: RegistrySnapshot, prefix: String) {
        models = snapshot.models.mapValues { Model($0, prefix: prefix) }
        let readiness = snapshot.readiness
        server = Server(
            ready: readiness.ready, readiness: readiness.reason, commit: snapshot.commit, source: snapshot.source,
            lastSync: snapshot.lastSync.map(Sync.init), routes: ["\(prefix)/all", "\(prefix)/"]
        )
    }

    static func render(_ snapshot: RegistrySnapshot, prefix: String) -> [UInt8] {
        encoded(IndexDocument(snapshot, prefix: prefix))
    }

    /// Compact JSON with sorted keys, as every body of the server.
    static func encoded(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every member is a string, a number, a bool or null: encoding cannot fail.
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8))
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (name, model) in models { try container.encode(model, forKey: Key(stringValue: name)) }
        try container.encode(server, forKey: Key(stringValue: "_server"))
    }

    struct Model: Encodable {
        var state: ModelState
        var version: String?
        var commit: String?
        var loadedAt: String?
        var type: String?
        var description: String?
        var pendingVersion: String?
        var routes: [String]
        var lastError: LastError?
        /// Only for a version served by worker processes.
        var workers: Workers?

        init(_ status: ModelStatus, prefix: String) {
            let serving = status.serving
            state = status.currentState
            version = serving?.version
            commit = serving?.commit
            loadedAt = serving.map { timestamp($0.loadedAt) }
            type = serving?.typeName
            description = serving?.summary
            pendingVersion = status.pendingVersion
            routes = ["\(prefix)/\(status.folderName)", "\(prefix)/all"]
            lastError = status.currentError.map(LastError.init)
            workers = status.workers.map { Workers(pids: $0.pids, restarts: $0.restarts, lastCrash: $0.lastCrash) }
        }

        enum CodingKeys: String, CodingKey {
            case state, version, commit, type, description, routes, workers
            case loadedAt = "loaded_at", pendingVersion = "pending_version", lastError = "last_error"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(state, forKey: .state)
            try container.encode(version, forKey: .version)
            try container.encode(commit, forKey: .commit)
            try container.encode(loadedAt, forKey: .loadedAt)
            try container.encode(type, forKey: .type)
            try container.encode(description, forKey: .description)
            try container.encode(pendingVersion, forKey: .pendingVersion)
            try container.encode(routes, forKey: .routes)
            try container.encode(lastError, forKey: .lastError)
            try container.encodeIfPresent(workers, forKey: .workers)
        }
    }

    struct LastError: Encodable {
        var message: String
        var file: String?
        var line: Int?
        var version: String?
        var at: String?
        var buildLog: String?

        init(_ report: FailureReport) {
            message = report.diagnostic.description
            file = report.diagnostic.file
            line = report.diagnostic.line
            version = report.version
            at = report.at.map(timestamp)
            buildLog = report.log
        }

        enum CodingKeys: String, CodingKey {
            case message, file, line, version, at
            case buildLog = "build_log"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(message, forKey: .message)
            try container.encode(file, forKey: .file)
            try container.encode(line, forKey: .line)
            try container.encode(version, forKey: .version)
            try container.encode(at, forKey: .at)
            try container.encode(buildLog, forKey: .buildLog)
        }
    }

    struct Workers: Encodable {
        var pids: [Int32]
        var restarts: Int
        var lastCrash: String?

        enum CodingKeys: String, CodingKey {
            case pids, restarts
            case lastCrash = "last_crash"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(pids, forKey: .pids)
            try container.encode(restarts, forKey: .restarts)
            try container.encode(lastCrash, forKey: .lastCrash)
        }
    }

    struct Server: Encodable {
        var ready: Bool
        var readiness: String
        var commit: String?
        var source: String
        var lastSync: Sync?
        var routes: [String]

        enum CodingKeys: String, CodingKey {
            case ready, readiness, commit, source, routes
            case lastSync = "last_sync"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(ready, forKey: .ready)
            try container.encode(readiness, forKey: .readiness)
            try container.encode(commit, forKey: .commit)
            try container.encode(source, forKey: .source)
            try container.encode(lastSync, forKey: .lastSync)
            try container.encode(routes, forKey: .routes)
        }
    }

    struct Sync: Encodable {
        var id: Int
        var result: String
        var message: String
        var startedAt: String
        var finishedAt: String

        init(_ report: SyncReport) {
            id = report.id
            result = report.succeeded ? "success" : "failure"
            message = report.message
            startedAt = timestamp(report.startedAt)
            finishedAt = timestamp(report.finishedAt)
        }

        enum CodingKeys: String, CodingKey {
            case id, result, message
            case startedAt = "started_at", finishedAt = "finished_at"
        }
    }
}

private func timestamp(_ date: Date) -> String {
    date.formatted(.iso8601)
}

/// The body of `/readyz` when ready: the commit, the models by state, the last sync.
struct Readiness: Encodable {
    var status = "ready"
    var commit: String?
    var models: [String: Int]
    var lastSync: IndexDocument.Sync?

    enum CodingKeys: String, CodingKey {
        case status, commit, models
        case lastSync = "last_sync"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(status, forKey: .status)
        try container.encode(commit, forKey: .commit)
        try container.encode(models, forKey: .models)
        try container.encode(lastSync, forKey: .lastSync)
    }
}
