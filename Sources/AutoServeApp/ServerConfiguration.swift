public import Logging
public import ServingCore

/// How models are isolated from the server and from each other (SPEC 6).
public enum ModelIsolation: String, Sendable, CaseIterable {
    /// Plugins load into the server itself: trusted models, lowest latency.
    case inprocess
    /// Each model runs in its own worker process.
    case process
}

/// Every setting of the server, with its default; read from the environment, overridden by flags.
public struct ServerConfiguration: Sendable {
    public var baseUrl = ""
    public var port = 8080
    public var host = "0.0.0.0"
    public var modelsRepo: String?
    public var modelsBranch = "main"
    public var modelsDir = "./models_serve"
    public var stateDir = "./.autoserve"
    public var syncInterval: Duration = .seconds(24 * 3600)
    /// `SYNC_AT` as minutes after midnight UTC.
    public var syncAtMinute: Int?
    public var gitToken: Secret?
    public var gitUsername: String?
    public var gitSSHKey: String?
    public var webhookSecret: Secret?
    public var adminToken: Secret?
    public var maxBodyBytes = 1 << 20
    public var modelTimeout: Duration = .milliseconds(10_000)
    public var modelIsolation: ModelIsolation = .process
    /// The binary that runs `autoserve worker`; `nil` is this executable (tests point it at the built binary).
    public var workerExecutable: String?
    public var swiftc: String?
    public var inferenceLog: String?
    public var logLevel: Logger.Level = .info
    /// Lines to log once the logger exists: deprecated names that were used.
    public var notices: [String] = []

    public init() {}
}

/// A setting whose value cannot be used, naming the setting and what it accepts.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
