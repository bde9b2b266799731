import Foundation
import HTTPTypes
public import Hummingbird
public import Logging
public import ModelManager
public import NIOCore
public import ServingCore

/// The HTTP frontend: maps requests to models and answers every route of SPEC 4.
///
/// Scoring itself is `Scoring`'s, mostly reached through `scoringHandlers()` in the channel pipeline; the
/// rest comes here through Hummingbird. No error escapes: every failure becomes the JSON error body.
public struct ServeResponder: HTTPResponder {
    public typealias Context = BasicRequestContext

    let manager: ModelManager
    let configuration: FrontendConfiguration
    let metrics: Metrics
    let scoring: Scoring
    let logger: Logger
    /// Webhook deliveries seen lately, so that a replayed delivery starts no sync.
    let deliveries = WebhookDeliveries()
    /// Every connection's slot under `MAX_CONNECTIONS`.
    let connections: ConnectionLimiter

    /// `serverName` is the `Server` header of the answers given in the channel pipeline (Hummingbird adds
    /// its configuration's to the others).
    public init(manager: ModelManager, configuration: FrontendConfiguration, metrics: Metrics, logger: Logger, serverName: String? = nil) {
        self.manager = manager
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.scoring = Scoring(manager: manager, configuration: configuration, metrics: metrics, logger: logger, serverName: serverName)
        self.connections = ConnectionLimiter(limit: configuration.maxConnections, metrics: metrics, logger: logger)
        metrics.declare("autoserve_requests_total", type: "counter", help: "Scoring requests by model, status and version.", labels: ["model", "status", "version"])
        metrics.declare("autoserve_request_duration_seconds", type: "histogram", help: "Scoring latency by model.", labels: ["model"])
    }

    /// The handlers to add to each HTTP/1 connection's pipeline (`HTTP1Channel.Configuration`'s
    /// `additionalChannelHandlers`): scoring requests are answered there, on the event loop.
    public func scoringHandlers() -> [any RemovableChannelHandler] {
        [ScoringChannelHandler(scoring: scoring, connectionGuard: ConnectionGuard(limiter: connections, timeouts: configuration.timeouts))]
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

    /// A scoring request that came through Hummingbird (the `ScoringChannelHandler` answers most of them
    /// before they get here): the body is read, then scored like there.
    func score(_ route: String, _ request: Request) async -> Response {
        let scoring = scoring
        let variables = await RequestVariables.read(request, maxBodyBytes: configuration.maxBodyBytes)
        let answer = await withUnsafeContinuation { (continuation: UnsafeContinuation<Scoring.Answer, Never>) in
            let completion: @Sendable (Scoring.Answer) -> Void = { continuation.resume(returning: $0) }
            if route == "all" {
                scoring.scoreAll(variables, completion: completion)
            } else {
                scoring.scoreOne(route, variables, completion: completion)
            }
        }
        return json(answer.status, answer.body, headers: answer.headers)
    }

    // MARK: - Health, readiness, metrics

    func readiness() -> Response {
        let snapshot = manager.snapshot()
        let readiness = snapshot.readiness
        guard readiness.ready else {
            return APIError(status: 503, code: "not_ready", message: readiness.reason).response()
        }
        var counts: [String: JSONValue] = [:]
        for state in [ModelState.ready, .loading, .failed] {
            counts[state.rawValue] = .number(Double(snapshot.models.values.filter { $0.currentState == state }.count))
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
        manager.publishStateMetrics()
        connections.publish()
        return Response(
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
