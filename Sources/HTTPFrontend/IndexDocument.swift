import Foundation
import ModelManager
import ServingCore

/// The model index at `/$baseUrl/`: one member per model folder, plus `_server` for the server itself.
///
/// Model names start with a letter, so the underscore-prefixed `_server` never collides with one (as
/// `_errors` in `/all`).
enum IndexDocument {
    static func render(_ snapshot: RegistrySnapshot, prefix: String) -> [UInt8] {
        var members: [String: JSONValue] = [:]
        for (name, status) in snapshot.models {
            members[name] = model(status, prefix: prefix, commit: snapshot.commit)
        }
        let readiness = snapshot.readiness
        members["_server"] = .object([
            "ready": .bool(readiness.ready),
            "readiness": .string(readiness.reason),
            "commit": snapshot.commit.map(JSONValue.string) ?? .null,
            "source": .string(snapshot.source),
            "last_sync": syncObject(snapshot.lastSync),
            "routes": .array(["\(prefix)/all", "\(prefix)/"].map(JSONValue.string)),
        ])
        return JSONValue.object(members).jsonBytes
    }

    static func model(_ status: ModelStatus, prefix: String, commit: String?) -> JSONValue {
        let serving = status.serving
        var object: [String: JSONValue] = [
            "state": .string(status.currentState.rawValue),
            "version": serving.map { .string($0.version) } ?? .null,
            "commit": (serving?.commit).map(JSONValue.string) ?? .null,
            "loaded_at": serving.map { .string(timestamp($0.loadedAt)) } ?? .null,
            "type": serving.map { .string($0.typeName) } ?? .null,
            "description": (serving?.summary).map(JSONValue.string) ?? .null,
            "pending_version": status.pendingVersion.map(JSONValue.string) ?? .null,
            "routes": .array(["\(prefix)/\(status.folderName)", "\(prefix)/all"].map(JSONValue.string)),
            "last_error": .null,
        ]
        if let report = (serving?.runner as? any WorkerReporting)?.workerReport() {
            object["workers"] = .object([
                "pids": .array(report.pids.map { .number(Double($0)) }),
                "restarts": .number(Double(report.restarts)),
                "last_crash": report.lastCrash.map(JSONValue.string) ?? .null,
            ])
        }
        if status.lastError == nil, let serving, let reason = serving.runner.brokenReason {
            object["last_error"] = .object([
                "message": .string("\(status.folderName): \(reason)"), "file": .null, "line": .null,
                "version": .string(serving.version), "at": .null, "build_log": .null,
            ])
        }
        if let error = status.lastError {
            object["last_error"] = .object([
                "message": .string(error.diagnostic.description),
                "file": error.diagnostic.file.map(JSONValue.string) ?? .null,
                "line": error.diagnostic.line.map { .number(Double($0)) } ?? .null,
                "version": error.version.map(JSONValue.string) ?? .null,
                "at": .string(timestamp(error.at)),
                "build_log": error.log.map(JSONValue.string) ?? .null,
            ])
        }
        return .object(object)
    }

    static func syncObject(_ report: SyncReport?) -> JSONValue {
        guard let report else { return .null }
        return .object([
            "id": .number(Double(report.id)),
            "result": .string(report.succeeded ? "success" : "failure"),
            "message": .string(report.message),
            "started_at": .string(timestamp(report.startedAt)),
            "finished_at": .string(timestamp(report.finishedAt)),
        ])
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
