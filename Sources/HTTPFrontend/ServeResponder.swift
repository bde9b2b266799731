import Foundation
import HTTPTypes
public import Hummingbird
public import Logging
public import ModelManager
public import NIOCore
public import ServingCore

/// The HTTP frontend: maps requests to models and answers every route of docs/http-api.md's "HTTP API".
///
/// Scoring itself is `Scoring`'s, mostly reached through `scoringHandlers()` in the channel pipeline; the
/// rest comes here through Hummingbird's router. No error escapes: every failure becomes the JSON error body,
/// a known path asked with another method gets 405 with `Allow`, and an unknown path a 404 naming the index.
public struct ServeResponder: HTTPResponder {
    public typealias Context = BasicRequestContext

    let endpoints: Endpoints
    let router: RouterResponder<Context>

    /// `serverName` is the `Server` header of the answers given in the channel pipeline (Hummingbird adds
    /// its configuration's to the others).
    public init(manager: any ModelServing, configuration: FrontendConfiguration, metrics: Metrics, logger: Logger, serverName: String? = nil) {
        endpoints = Endpoints(manager: manager, configuration: configuration, metrics: metrics, logger: logger, serverName: serverName)
        router = Self.router(endpoints)
    }

    /// The handlers to add to each HTTP/1 connection's pipeline (`HTTP1Channel.Configuration`'s
    /// `additionalChannelHandlers`): scoring requests are answered there, on the event loop.
    public func scoringHandlers() -> [any RemovableChannelHandler] {
        [
            ScoringChannelHandler(
                scoring: endpoints.scoring, connectionGuard: ConnectionGuard(limiter: endpoints.connections, timeouts: endpoints.configuration.timeouts))
        ]
    }

    /// The inference log, which the server closes (writing what is queued) when it stops.
    public var inferenceLog: InferenceLog? { endpoints.configuration.inferenceLog }

    /// Starts the drain of a stop with `SHUTDOWN_DELAY`: `/readyz` answers 503 `draining` from now on, and every
    /// connection closes after its next answer.
    public func drain() {
        endpoints.connections.drain()
    }

    public func respond(to request: Request, context: Context) async throws -> Response {
        try await router.respond(to: request, context: context)
    }

    /// Every route of `RouteTable`, each with its handler; any other method of those paths is 405 with `Allow`.
    static func router(_ endpoints: Endpoints) -> RouterResponder<Context> {
        let table = RouteTable(prefix: endpoints.configuration.prefix)
        let router = Router(context: Context.self)
        // Middleware applies to the routes added after it; the first is the outermost, so that the 404 that
        // NotFoundAsJSON makes gets its id too.
        router.add(middleware: RequestIDHeader())
        router.add(middleware: NotFoundAsJSON(endpoints: endpoints, table: table))
        let v2 = InferenceProtocolV2(endpoints: endpoints)
        for route in table.routes {
            let handler = Self.handler(route.handler, endpoints, v2)
            let path = RouterPath(route.routerPath)
            for method in route.methods { router.on(path, method: method) { request, context in await handler(request, context) } }
            for method in otherMethods where !route.methods.contains(method) {
                router.on(path, method: method) { request, _ in
                    APIError.methodNotAllowed(request.method, path: request.uri.path, allowed: route.methods).response()
                }
            }
        }
        return router.buildResponder()
    }

    static func handler(
        _ handler: RouteTable.Handler, _ endpoints: Endpoints, _ v2: InferenceProtocolV2
    ) -> @Sendable (Request, Context) async -> Response {
        switch handler {
        case .healthz: { _, _ in endpoints.json(200, Array(#"{"status":"ok"}"#.utf8)) }
        case .readyz: { _, _ in endpoints.readiness() }
        case .metrics: { _, _ in endpoints.metricsResponse() }
        case .webhook: { request, _ in await endpoints.webhook(request) }
        case .sync: { request, _ in endpoints.adminSync(request) }
        case .index: { request, _ in endpoints.index(request) }
        case .openAPI: { _, _ in endpoints.json(200, endpoints.openAPI().jsonBytes) }
        case .all: { request, _ in await endpoints.score("all", request) }
        case .model: { request, context in await endpoints.score(context.parameters.get("model") ?? "", request) }
        case .v2Server, .v2Live, .v2Ready, .v2Model, .v2ModelReady, .v2Infer: v2.handler(handler)
        }
    }

    /// Every answer carries `X-Request-ID`: the client's own when it is acceptable, else a new one (scoring
    /// answers set theirs, the one their log line holds).
    struct RequestIDHeader: RouterMiddleware {
        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            var response = try await next(request, context)
            if response.headers[.requestID] == nil { response.headers[.requestID] = RequestID.of(request.headers[.requestID]) }
            return response
        }
    }

    /// Answers the router's 404 (a path no route takes) with the JSON error body that names the index.
    struct NotFoundAsJSON: RouterMiddleware {
        let endpoints: Endpoints
        let table: RouteTable

        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            do {
                return try await next(request, context)
            } catch let error as HTTPError where error.status == .notFound {
                let prefix = endpoints.configuration.prefix
                // A method no route registers (QUERY, a made-up one) on a path that exists: 405, as for the others.
                if let allowed = table.allowedMethods(request.uri.path), !allowed.contains(request.method) {
                    return APIError.methodNotAllowed(request.method, path: request.uri.path, allowed: allowed).response()
                }
                return endpoints.notFound("no route \(request.uri.path); models are served under \(prefix)/<Model>, the index at \(prefix)/")
            }
        }
    }

    /// The methods a route that does not answer them refuses with 405 (any other method gets 404).
    static let otherMethods: [HTTPRequest.Method] = [.get, .head, .post, .put, .delete, .patch, .options, .trace]

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

}

/// The answers of the routes that are not scoring, and the stages they read.
struct Endpoints: Sendable {
    let manager: any ModelServing
    let configuration: FrontendConfiguration
    let metrics: Metrics
    let scoring: Scoring
    let logger: Logger
    /// Webhook deliveries seen lately, so that a replayed delivery starts no sync.
    let deliveries = WebhookDeliveries()
    /// Every connection's slot under `MAX_CONNECTIONS`.
    let connections: ConnectionLimiter

    init(manager: any ModelServing, configuration: FrontendConfiguration, metrics: Metrics, logger: Logger, serverName: String?) {
        self.manager = manager
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        scoring = Scoring(manager: manager, configuration: configuration, metrics: metrics, logger: logger, serverName: serverName)
        connections = ConnectionLimiter(limit: configuration.maxConnections, metrics: metrics, logger: logger)
    }

    // MARK: - Scoring

    /// A scoring request that came through Hummingbird (the `ScoringChannelHandler` answers most of them
    /// before they get here): the body is read, then scored like there.
    func score(_ route: String, _ request: Request) async -> Response {
        let scoring = scoring
        let body = await RequestVariables.read(request, maxBodyBytes: configuration.maxBodyBytes, maxRows: configuration.maxBatchRows)
        let answer = await withUnsafeContinuation { (continuation: UnsafeContinuation<Scoring.Answer, Never>) in
            let completion: @Sendable (Scoring.Answer) -> Void = { continuation.resume(returning: $0) }
            scoring.score(route, body, requestID: RequestID.of(request.headers[.requestID]), completion: completion)
        }
        return json(answer.status, answer.body, headers: answer.headers)
    }

    // MARK: - Health, readiness, metrics

    func readiness() -> Response {
        if connections.isDraining {
            return APIError(
                status: 503, code: "draining", message: "the server is stopping (SHUTDOWN_DELAY); it still answers, but send new requests elsewhere"
            ).response()
        }
        let snapshot = manager.snapshot()
        let readiness = snapshot.readiness
        guard readiness.ready else {
            return APIError(status: 503, code: "not_ready", message: readiness.reason).response()
        }
        var counts: [String: Int] = [:]
        for state in [ModelState.ready, .loading, .failed] {
            counts[state.rawValue] = snapshot.models.values.filter { $0.currentState == state }.count
        }
        return json(200, IndexDocument.encoded(Readiness(commit: snapshot.commit, models: counts, lastSync: snapshot.lastSync.map(IndexDocument.Sync.init))))
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

    func notFound(_ message: String) -> Response {
        APIError(status: 404, code: "not_found", message: message).response()
    }

    /// The index: a page for a browser (`Accept: text/html`), JSON for every other client (docs/http-api.md, "HTTP API").
    func index(_ request: Request) -> Response {
        let snapshot = manager.snapshot()
        let accept = request.headers[.accept]?.lowercased() ?? ""
        guard accept.contains("text/html") else {
            return json(200, IndexDocument.render(snapshot, prefix: configuration.prefix), headers: [.vary: "Accept"])
        }
        let origin = "http://\(request.head.authority ?? "localhost")"
        let page = IndexPage.render(snapshot, prefix: configuration.prefix, metrics: metrics, origin: origin)
        return Response(
            status: .ok, headers: [.contentType: "text/html; charset=utf-8", .vary: "Accept"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: page)))
    }

    /// The OpenAPI document of the models ready now (docs/http-api.md, "OpenAPI").
    func openAPI() -> JSONValue {
        let models = manager.snapshot().servingVersions.map { version in
            OpenAPIDocument.Model(
                name: version.name.rawValue, description: version.summary, version: version.version, typeName: version.typeName, schemas: version.schemas,
                example: version.example, explains: version.explainRefusal == nil)
        }
        return OpenAPIDocument.document(
            models: models, prefix: configuration.prefix, maxBatchRows: configuration.maxBatchRows, adminSync: configuration.adminToken != nil,
            webhook: configuration.webhookSecret != nil)
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
    static let requestID = HTTPField.Name("X-Request-ID")!
}
