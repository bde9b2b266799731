public import HTTPTypes

/// Every route the server answers (docs/http-api.md, "HTTP API"), each once: the router, 405 with `Allow`, the names a model
/// folder may not take, the OpenAPI document's fixed paths and the test of README's route table all read this table.
public struct RouteTable: Sendable {
    /// What answers a route.
    public enum Handler: Sendable, Hashable {
        case healthz, readyz, metrics, index, openAPI, sync, webhook, all, model
        case v2Server, v2Live, v2Ready, v2Model, v2ModelReady, v2Infer
    }

    /// What a route needs to be on: the sync route answers only with `ADMIN_TOKEN` set, the webhook with
    /// `WEBHOOK_SECRET` (off, they are 404 in the OpenAPI document's eyes: it leaves them out).
    public enum Requirement: Sendable {
        case none, adminToken, webhookSecret
    }

    public struct Route: Sendable {
        public let handler: Handler
        /// The methods it answers (HEAD is GET's, without the body); any other method gets 405 with these.
        public let methods: [HTTPRequest.Method]
        /// The path's segments; `{name}` is a parameter.
        public let segments: [String]
        /// Whether the path starts with `$baseUrl` (the v2 protocol, health, metrics and the webhook sit at the root).
        public let underPrefix: Bool
        public let summary: String
        public let requirement: Requirement

        /// The path as OpenAPI writes it: `/v2/models/{model}`.
        public var path: String { "/" + segments.joined(separator: "/") }

        /// The path as Hummingbird's router takes it: `/v2/models/:model`.
        var routerPath: String {
            "/" + segments.map { $0.hasPrefix("{") ? ":" + $0.dropFirst().dropLast() : Substring($0) }.joined(separator: "/")
        }

        /// The number of literal segments of the route that `path` takes, `nil` when it takes another one.
        func literalMatches(_ path: [Substring]) -> Int? {
            guard path.count == segments.count else { return nil }
            var literals = 0
            for (segment, part) in zip(segments, path) {
                if segment.hasPrefix("{") {
                    guard !part.isEmpty else { return nil }
                } else {
                    guard segment == part else { return nil }
                    literals += 1
                }
            }
            return literals
        }
    }

    /// `/<baseUrl>` or the empty string.
    public let prefix: String
    public let routes: [Route]

    public init(prefix: String) {
        self.prefix = prefix
        let base = prefix.split(separator: "/").map(String.init)
        func route(
            _ handler: Handler, _ methods: [HTTPRequest.Method], _ path: [String], underPrefix: Bool = false, _ summary: String,
            _ requirement: Requirement = .none
        ) -> Route {
            Route(
                handler: handler, methods: methods, segments: underPrefix ? base + path : path, underPrefix: underPrefix, summary: summary,
                requirement: requirement)
        }
        let read: [HTTPRequest.Method] = [.get, .head]
        var routes = [
            route(.index, read, [], underPrefix: true, "Every model folder: its state, version, type, last error (with the build log) and routes"),
            route(.openAPI, read, ["openapi.json"], underPrefix: true, "This document: the models ready now, each with its request and response schemas"),
            route(.all, [.get, .post], ["all"], underPrefix: true, "Score one row with every model ready, concurrently"),
            route(.sync, [.post], ["-", "sync"], underPrefix: true, "Queue a sync of the models source now (ADMIN_TOKEN)", .adminToken),
            route(.healthz, read, ["healthz"], "200 while the process runs"),
            route(
                .readyz, read, ["readyz"],
                "503 until every model folder of the first sync finished its first load (the reason names those loading); "
                    + "then 200 while a model serves; 503 when none can serve, and while draining"),
            route(.metrics, read, ["metrics"], "Prometheus text exposition"),
            route(
                .webhook, [.post], ["hooks", "git"], "A push webhook (GitHub, Gitea, GitLab) verified with WEBHOOK_SECRET, which queues a sync", .webhookSecret),
            route(.v2Server, read, ["v2"], "Open Inference Protocol: server metadata"),
            route(.v2Live, read, ["v2", "health", "live"], "Open Inference Protocol: live"),
            route(.v2Ready, read, ["v2", "health", "ready"], "Open Inference Protocol: ready"),
        ]
        for model in [["v2", "models", "{model}"], ["v2", "models", "{model}", "versions", "{version}"]] {
            routes += [
                route(.v2Model, read, model, "Open Inference Protocol: model metadata (inputs from its variables, outputs when known)"),
                route(.v2ModelReady, read, model + ["ready"], "Open Inference Protocol: model ready"),
                route(.v2Infer, [.post], model + ["infer"], "Open Inference Protocol: score N rows, one input tensor per variable of shape [N]"),
            ]
        }
        // Last: any literal route above takes its path first (`/healthz` is not a model when `baseUrl` is empty).
        routes.append(route(.model, [.get, .post], ["{model}"], underPrefix: true, "Score one row, or a batch of rows, with the model"))
        self.routes = routes
    }

    /// The route `path` takes (the one with the most literal segments, as the router picks), `nil` for none; a
    /// trailing slash is ignored.
    public func route(_ path: String) -> Route? {
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if parts.count > 1, parts.last?.isEmpty == true { parts = parts.dropLast() }
        let segments = parts.count == 1 && parts.first?.isEmpty == true ? [] : Array(parts)
        var best: (route: Route, literals: Int)?
        for route in routes {
            guard let literals = route.literalMatches(segments) else { continue }
            if literals > best?.literals ?? -1 { best = (route, literals) }
        }
        return best?.route
    }

    /// The methods the route at `path` answers, `nil` when no route is there.
    public func allowedMethods(_ path: String) -> [HTTPRequest.Method]? { route(path)?.methods }

    /// The first path segments below the prefix that routes other than a model's or `all` take (with an empty prefix,
    /// the routes at the root too): a POST there is not a scoring request.
    public var otherNamesBelowPrefix: Set<String> {
        let depth = prefix.split(separator: "/").count
        return Set(
            routes.filter { $0.handler != .all && $0.handler != .model }.compactMap { route in
                route.underPrefix ? route.segments.dropFirst(depth).first : prefix.isEmpty ? route.segments.first : nil
            })
    }

    /// The names a model folder may not take when `baseUrl` is empty: the first segments of the routes at the root,
    /// which the router sends to the server's own handlers (the manager fails such a folder with that reason).
    public static let rootNames: Set<String> = Set(
        RouteTable(prefix: "").routes.filter { !$0.underPrefix }.compactMap { $0.segments.first })

    /// The names under the prefix that are a route of their own and could be a folder's name (`all`), taken by no
    /// model whatever `baseUrl` is (`ModelName.reserved`).
    public static let prefixNames: Set<String> = Set(
        RouteTable(prefix: "").routes.filter { $0.underPrefix && $0.segments.count == 1 }.map { $0.segments[0] }.filter { name in
            name.first?.isLetter == true && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
        })
}
