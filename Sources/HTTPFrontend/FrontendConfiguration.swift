public import ServingCore

/// What the HTTP layer needs from the server's configuration.
public struct FrontendConfiguration: Sendable {
    /// The route prefix without slashes (`""` serves models at `/<Model>`).
    public var baseUrl: String = ""
    public var maxBodyBytes: Int = 1 << 20
    /// The most rows of one `{"rows": [...]}` request (`MAX_BATCH_ROWS`); more are refused with 413.
    public var maxBatchRows: Int = 10_000
    /// The most bytes of outputs one answer holds (`MAX_ANSWER_BYTES`): a batch's rows past it get 413, and so do the
    /// members of `/all` past it.
    public var maxAnswerBytes: Int = 64 << 20
    /// Enables `POST /$baseUrl/-/sync` for `Authorization: Bearer <token>`.
    public var adminToken: Secret?
    /// Enables `POST /hooks/git`, verified with this secret.
    public var webhookSecret: Secret?
    /// The branch served in git mode: pushes to other branches are acknowledged and ignored.
    public var branch: String?
    /// The most client connections held at once (`MAX_CONNECTIONS`); more are refused with 503.
    public var maxConnections: Int = 1024
    /// How long a client may take to send a request and to start the next one.
    public var timeouts = ConnectionTimeouts()
    /// The other replicas of a fleet, asked for a sync when this one starts one (`PEERS`).
    public var peers: PeerSync?
    /// Where each scored row is written (`INFERENCE_LOG`), off the request path.
    public var inferenceLog: InferenceLog?

    public init() {}

    /// `/<baseUrl>` or the empty string, the prefix of every model route.
    public var prefix: String { baseUrl.isEmpty ? "" : "/\(baseUrl)" }

}
