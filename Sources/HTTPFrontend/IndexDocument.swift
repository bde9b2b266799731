import Foundation
import ModelManager
import ServingCore

/// The model index at `/$baseUrl/`: one member per model folder, plus `_server` for the server itself
/// (docs/http-api.md, "HTTP API").
///
/// Model names start with a letter, so the underscore-prefixed `_server` never collides with one (as
/// `_errors` in `/all`). Every documented member is present; one without a value is `null` (`NullWhenNil`).
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
        @NullWhenNil var version: String?
        @NullWhenNil var commit: String?
        @NullWhenNil var loadedAt: String?
        @NullWhenNil var type: String?
        @NullWhenNil var description: String?
        @NullWhenNil var pendingVersion: String?
        @NullWhenNil var pending: Pending?
        var routes: [String]
        @NullWhenNil var lastError: LastError?
        /// Only for a version served by worker processes.
        var workers: Workers?
        /// How the serving version's code is confined (docs/operations.md, "The sandbox").
        var sandbox: String?
        /// Whether the serving version answers `"explain": true` (docs/explanations.md).
        var explains: Bool?

        init(_ status: ModelStatus, prefix: String) {
            let serving = status.serving
            state = status.currentState
            version = serving?.version
            commit = serving?.commit
            loadedAt = serving.map { timestamp($0.loadedAt) }
            type = serving?.typeName
            description = serving?.summary
            pendingVersion = status.pendingVersion
            pending = status.pending.map { Pending(version: $0.version, phase: $0.phase.rawValue, since: timestamp($0.since)) }
            routes = ["\(prefix)/\(status.folderName)", "\(prefix)/all"]
            lastError = status.currentError.map(LastError.init)
            workers = status.workers.map { Workers(pids: $0.pids, restarts: $0.restarts, lastCrash: $0.lastCrash) }
            sandbox = serving?.runner.sandbox
            explains = serving.map { $0.explainRefusal == nil }
        }

        enum CodingKeys: String, CodingKey {
            case state, version, commit, type, description, routes, workers, sandbox, pending, explains
            case loadedAt = "loaded_at"
            case pendingVersion = "pending_version"
            case lastError = "last_error"
        }
    }

    /// The version being brought up: `aspired` (waiting for a build slot), `building` or `loading`, since when.
    struct Pending: Encodable {
        var version: String
        var phase: String
        var since: String
    }

    struct LastError: Encodable {
        var message: String
        @NullWhenNil var file: String?
        @NullWhenNil var line: Int?
        @NullWhenNil var version: String?
        @NullWhenNil var at: String?
        @NullWhenNil var buildLog: String?

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
    }

    struct Workers: Encodable {
        var pids: [Int32]
        var restarts: Int
        @NullWhenNil var lastCrash: String?

        enum CodingKeys: String, CodingKey {
            case pids, restarts
            case lastCrash = "last_crash"
        }
    }

    struct Server: Encodable {
        var ready: Bool
        var readiness: String
        @NullWhenNil var commit: String?
        var source: String
        @NullWhenNil var lastSync: Sync?
        var routes: [String]

        enum CodingKeys: String, CodingKey {
            case ready, readiness, commit, source, routes
            case lastSync = "last_sync"
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
            case startedAt = "started_at"
            case finishedAt = "finished_at"
        }
    }
}

private func timestamp(_ date: Date) -> String {
    date.formatted(.iso8601)
}

/// The body of `/readyz` when ready: the commit, the models by state, the last sync.
struct Readiness: Encodable {
    var status = "ready"
    @NullWhenNil var commit: String?
    var models: [String: Int]
    @NullWhenNil var lastSync: IndexDocument.Sync?

    enum CodingKeys: String, CodingKey {
        case status, commit, models
        case lastSync = "last_sync"
    }
}

/// Encodes `nil` as `null` rather than leaving the member out (the synthesized `Encodable` drops a `nil`
/// optional): every member the README documents is in the body.
@propertyWrapper
struct NullWhenNil<Value: Encodable>: Encodable {
    var wrappedValue: Value?

    /// Spelled out: a property wrapper's `init(wrappedValue:)` is what lets `var x: T?` stay `T?` in memberwise inits.
    init(wrappedValue value: Value?) {
        wrappedValue = value
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(wrappedValue)
    }
}
