import Foundation
import HTTPTypes
public import Hummingbird
public import Logging
public import ModelManager
public import ServingCore

/// The HTTP frontend: maps requests to models and answers every route of SPEC 4.
///
/// Each request reads one registry snapshot and holds the `ServingVersion` it found until it answers, so
/// a swap in the middle never changes the version it runs on. No error escapes: every failure becomes the
/// JSON error body.
public struct ServeResponder: HTTPResponder {
    public typealias Context = BasicRequestContext

    let manager: ModelManager
    let configuration: FrontendConfiguration
    let metrics: Metrics
    let logger: Logger

    public init(manager: ModelManager, configuration: FrontendConfiguration, metrics: Metrics, logger: Logger) {
        self.manager = manager
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        metrics.declare("autoserve_requests_total", type: "counter", help: "Scoring requests by model, status and version.", labels: ["model", "status", "version"])
        metrics.declare("autoserve_request_duration_seconds", type: "histogram", help: "Scoring latency by model.", labels: ["model"])
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        switch path {
        case "/healthz":
            return only([.get, .head], request) ?? json(200, Array(#"{"status":"ok"}"#.utf8))
        case "/readyz":
            return only([.get, .head], request) ?? readiness()
        case "/metrics":
            return only([.get, .head], request) ?? metricsResponse()
        case "/hooks/git":
            if let refusal = only([.post], request) { return refusal }
            return await webhook(request)
        case configuration.prefix + "/-/sync":
            if let refusal = only([.post], request) { return refusal }
            return adminSync(request)
        default:
            break
        }
        guard let route = Self.modelRoute(path, prefix: configuration.prefix) else {
            return notFound("no route \(path); models are served under \(configuration.prefix)/<Model>, the index at \(configuration.prefix)/")
        }
        switch route {
        case "":
            return only([.get, .head], request) ?? json(200, IndexDocument.render(manager.snapshot(), prefix: configuration.prefix))
        case "all":
            if let refusal = only([.get, .post], request) { return refusal }
            return await scoreAll(request)
        default:
            if let refusal = only([.get, .post], request) { return refusal }
            return await score(route, request)
        }
    }

    /// The route below the prefix: `""` for the index, else one path component; `nil` when it is not ours.
    /// Works on UTF-8 bytes: on every request, character-by-character comparison cost more than routing.
    static func modelRoute(_ path: String, prefix: String) -> String? {
        guard path.utf8.starts(with: prefix.utf8) else { return nil }
        var rest = path.utf8.dropFirst(prefix.utf8.count)
        if rest.isEmpty { return "" }
        guard rest.first == UInt8(ascii: "/") else { return nil }
        rest = rest.dropFirst()
        if rest.last == UInt8(ascii: "/") { rest = rest.dropLast() }
        guard !rest.contains(UInt8(ascii: "/")) else { return nil }
        return String(Substring(rest))
    }

    // MARK: - Scoring

    func score(_ name: String, _ request: Request) async -> Response {
        let clock = ContinuousClock()
        let start = clock.now
        let snapshot = manager.snapshot()
        guard let status = snapshot.models[name] else {
            let available = snapshot.servingVersions.map(\.name.rawValue)
            let list = available.isEmpty ? "none is ready yet" : "the available ones are \(available.joined(separator: ", "))"
            return record(name, nil, start, clock, notFound("no model named '\(name)'; \(list) (see \(configuration.prefix)/)"))
        }
        guard let version = status.serving else {
            return record(name, nil, start, clock, Self.notReady(status).response())
        }
        let variables: [UInt8]
        switch await RequestVariables.read(request, maxBodyBytes: configuration.maxBodyBytes) {
        case .success(let bytes): variables = bytes
        case .failure(let error): return record(name, version.version, start, clock, error.response())
        }
        let response: Response
        switch await version.runner.predict(variables: variables) {
        case .output(let bytes):
            response = json(200, bytes, headers: [.modelVersion: version.version])
        case .failure(let failure):
            var error = APIError(failure, model: name)
            error.headers[.modelVersion] = version.version
            response = error.response()
        }
        return record(name, version.version, start, clock, response)
    }

    /// Scores one row against every ready model at once; failures go under `_errors`.
    func scoreAll(_ request: Request) async -> Response {
        let clock = ContinuousClock()
        let start = clock.now
        let snapshot = manager.snapshot()
        let variables: [UInt8]
        switch await RequestVariables.read(request, maxBodyBytes: configuration.maxBodyBytes) {
        case .success(let bytes): variables = bytes
        case .failure(let error): return record("all", nil, start, clock, error.response())
        }
        let versions = snapshot.servingVersions
        guard !versions.isEmpty else {
            let message = snapshot.isReady ? "no model is ready; see \(configuration.prefix)/ for each model's state" : "the server is still loading: \(snapshot.readinessReason)"
            return record("all", nil, start, clock, APIError(status: 503, code: "no_model_ready", message: message).response())
        }
        let predictions = await FanOut.predict(variables, with: versions.map(\.runner))
        var results: [String: Prediction] = [:]
        for (version, prediction) in zip(versions, predictions) { results[version.name.rawValue] = prediction }
        var outputs: [(String, [UInt8])] = []
        var errors: [(String, APIError)] = []
        for (name, prediction) in results {
            switch prediction {
            case .output(let bytes): outputs.append((name, bytes))
            case .failure(let failure): errors.append((name, APIError(failure, model: name)))
            }
        }
        for (name, status) in snapshot.models where status.serving == nil {
            errors.append((name, Self.notReady(status)))
        }
        outputs.sort { $0.0 < $1.0 }
        errors.sort { $0.0 < $1.0 }
        var body: [UInt8] = [UInt8(ascii: "{")]
        for (name, bytes) in outputs {
            if body.count > 1 { body.append(UInt8(ascii: ",")) }
            JSONWriter.writeString(name, into: &body)
            body.append(UInt8(ascii: ":"))
            body.append(contentsOf: bytes)
        }
        if !errors.isEmpty {
            if body.count > 1 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: #""_errors":{"#.utf8)
            for (position, (name, error)) in errors.enumerated() {
                if position > 0 { body.append(UInt8(ascii: ",")) }
                JSONWriter.writeString(name, into: &body)
                body.append(UInt8(ascii: ":"))
                body.append(contentsOf: error.errorObject)
            }
            body.append(UInt8(ascii: "}"))
        }
        var status = 200
        if outputs.isEmpty {
            let answered = errors.filter { name, _ in results[name] != nil }.map { $0.1 }
            let statuses = Set(answered.map(\.status.code))
            status = statuses.count == 1 ? statuses.first! : 500
            let summary = APIError(status: status, code: "no_model_answered", message: "no model answered this row; each model's error is under _errors")
            if body.count > 1 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: #""error":"#.utf8)
            body.append(contentsOf: summary.errorObject)
        }
        body.append(UInt8(ascii: "}"))
        return record("all", nil, start, clock, json(status, body))
    }

    static func notReady(_ status: ModelStatus) -> APIError {
        switch status.state {
        case .loading:
            let version = status.pendingVersion.map { " version \($0.prefix(12))" } ?? ""
            return APIError(status: 503, code: "model_loading", message: "\(status.folderName) is loading\(version); retry in a few seconds")
        case .failed, .ready:
            let reason = status.lastError.map { "\($0.diagnostic)" } ?? "no version could be loaded"
            return APIError(status: 503, code: "model_failed", message: "\(status.folderName) has no version serving: \(reason); fix the folder and sync again")
        }
    }

    func record(_ model: String, _ version: String?, _ start: ContinuousClock.Instant, _ clock: ContinuousClock, _ response: Response) -> Response {
        let seconds = (clock.now - start).seconds
        let status = String(response.status.code)
        metrics.increment("autoserve_requests_total", labels: [model, status, version ?? ""])
        metrics.observe("autoserve_request_duration_seconds", labels: [model], value: seconds)
        if logger.logLevel <= .debug {
            logger.debug("request", metadata: ["model": "\(model)", "status": "\(status)", "version": "\(version?.prefix(12) ?? "-")", "seconds": "\(seconds)"])
        }
        return response
    }

    // MARK: - Health, readiness, metrics

    func readiness() -> Response {
        let snapshot = manager.snapshot()
        guard snapshot.isReady else {
            return APIError(status: 503, code: "not_ready", message: snapshot.readinessReason).response()
        }
        var counts: [String: JSONValue] = [:]
        for state in [ModelState.ready, .loading, .failed] {
            counts[state.rawValue] = .number(Double(snapshot.models.values.filter { $0.state == state }.count))
        }
        let body: JSONValue = .object([
            "status": "ready",
            "commit": snapshot.commit.map(JSONValue.string) ?? .null,
            "models": .object(counts),
            "last_sync": IndexDocument.syncObject(snapshot.lastSync),
        ])
        return json(200, body.jsonBytes)
    }

    func metricsResponse() -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.render()))
        )
    }

    // MARK: - Helpers

    /// `nil` when the method is allowed, else the 405 answer.
    func only(_ methods: [HTTPRequest.Method], _ request: Request) -> Response? {
        methods.contains(request.method) ? nil : APIError.methodNotAllowed(request.method, path: request.uri.path, allowed: methods).response()
    }

    func notFound(_ message: String) -> Response {
        APIError(status: 404, code: "not_found", message: message).response()
    }

    func json(_ status: Int, _ bytes: [UInt8], headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: HTTPResponse.Status(code: status), headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

extension HTTPField.Name {
    /// The version that answered a scoring request.
    static let modelVersion = HTTPField.Name("X-Model-Version")!
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}
