/// What the HTTP layer needs from the server's configuration.
public struct FrontendConfiguration: Sendable {
    /// The route prefix without slashes (`""` serves models at `/<Model>`).
    public var baseUrl: String = ""
    public var maxBodyBytes: Int = 1 << 20
    /// Log one line per request at info level (otherwise at debug).
    public var logRequests = false

    public init() {}

    /// `/<baseUrl>` or the empty string, the prefix of every model route.
    public var prefix: String { baseUrl.isEmpty ? "" : "/\(baseUrl)" }

    /// The endpoints a model folder may not shadow when `baseUrl` is empty.
    public static let rootEndpoints: Set<String> = ["healthz", "readyz", "metrics", "hooks"]
}
