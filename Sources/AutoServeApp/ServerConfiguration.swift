import Foundation
public import Logging
public import PluginRuntime
public import ServingCore

/// How models are isolated from the server and from each other (docs/architecture.md, "Worker processes").
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
    /// Where built plugins are cached, which replicas may share; `nil` is `STATE_DIR/cache`.
    public var cacheDir: String?
    public var syncInterval: Duration = .seconds(24 * 3600)
    /// `SYNC_AT` as minutes after midnight UTC.
    public var syncAtMinute: Int?
    public var gitToken: Secret?
    public var gitUsername: String?
    public var gitSSHKey: String?
    public var webhookSecret: Secret?
    public var adminToken: Secret?
    /// The allowed signers file: a commit of `MODELS_REPO` serves only if one of its keys signed it.
    public var modelsRepoAllowedSigners: String?
    /// Seals the build cache's entries (`CACHE_KEY`); `nil`: the key of `STATE_DIR/cache.key`, made when missing.
    public var cacheKey: Secret?
    public var maxBodyBytes = 1 << 20
    public var maxBatchRows = 10_000
    /// The most bytes of outputs one answer holds: a batch's rows past it (and `/all`'s members) get 413.
    public var maxAnswerBytes = 64 << 20
    /// The most worker processes of every model together; `nil` derives it at start from memory and cores.
    public var maxWorkers: Int?
    /// The largest model folder a version may have; a bigger one fails with a diagnostic before it is written.
    public var maxModelBytes = 1 << 30
    /// The most client connections at once; `nil` derives it at start from the descriptor limit.
    public var maxConnections: Int?
    /// How long a client may take to send a request head, between body parts, and to start its next request.
    public var headerTimeout: Duration = .seconds(10)
    public var bodyTimeout: Duration = .seconds(30)
    public var keepAliveTimeout: Duration = .seconds(60)
    /// The longest a stop (SIGTERM) may take; then the requests in flight get 503 and the server exits 1.
    public var shutdownTimeout: Duration = .seconds(30)
    /// How long after SIGTERM the server keeps accepting and answering (with `/readyz` at 503 `draining`) before
    /// it stops accepting: the time a load balancer takes to stop sending it new connections.
    public var shutdownDelay: Duration = .zero
    /// The other replicas of a fleet (`host:port`, comma-separated; a host may name many), asked for a sync when
    /// this one starts one.
    public var peers: String?
    public var modelTimeout: Duration = .milliseconds(10_000)
    public var modelIsolation: ModelIsolation = .process
    /// How each worker is confined (`MODEL_SANDBOX`, docs/operations.md, "The sandbox").
    public var modelSandbox: SandboxPolicy.Mode = .strict
    /// What each model may have beyond its sandbox when its model.yaml asks (`SANDBOX_ALLOW`).
    public var sandboxAllow: [String: SandboxGrant] = [:]
    /// Variables of the server's environment a worker gets beside the defaults (`MODEL_ENV`).
    public var modelEnvironment: [String] = []
    /// The binary that runs as a model's worker (`autoserve-worker`); `nil` is this executable (tests point it at the built binary).
    public var workerExecutable: String?
    /// The binary that reads a version's files in a helper process (`autoserve read-version`); `nil` is this executable
    /// (tests point it at the built `autoserve`).
    public var helperExecutable: String?
    public var swiftc: String?
    public var inferenceLog: String?
    public var inferenceLogSample: Double = 1
    public var inferenceLogMaxMB = 100
    public var inferenceLogKeep = 5
    public var logLevel: Logger.Level = .info
    /// Lines to log once the logger exists: deprecated names that were used.
    public var notices: [String] = []

    public init() {}

    /// The same settings with every path made absolute against `directory` (the working directory at start).
    ///
    /// Done once, at start: swiftc runs in its own working directory, and a relative `STATE_DIR` handed to it
    /// named files that did not exist there (the first `make serve` on a fresh clone served nothing).
    public func resolvingPaths(against directory: String) -> ServerConfiguration {
        var resolved = self
        resolved.stateDir = Self.absolute(stateDir, against: directory)
        resolved.cacheDir = Self.absolute(cacheDir ?? (stateDir as NSString).appendingPathComponent("cache"), against: directory)
        resolved.modelsDir = Self.absolute(modelsDir, against: directory)
        resolved.gitSSHKey = gitSSHKey.map { Self.absolute($0, against: directory) }
        resolved.inferenceLog = inferenceLog.map { Self.absolute($0, against: directory) }
        // A bare name is looked up on PATH; only a path with a slash is a file relative to the directory.
        resolved.swiftc = swiftc.map { $0.contains("/") ? Self.absolute($0, against: directory) : $0 }
        resolved.modelsRepo = modelsRepo.map { Self.isLocalPath($0) ? Self.absolute($0, against: directory) : $0 }
        resolved.workerExecutable = workerExecutable.map { Self.absolute($0, against: directory) }
        resolved.helperExecutable = helperExecutable.map { Self.absolute($0, against: directory) }
        return resolved
    }

    /// The paths the server uses, as logged at start.
    public var resolvedPaths: [(setting: String, path: String)] {
        var paths = [("STATE_DIR", stateDir)]
        if let cacheDir { paths.append(("CACHE_DIR", cacheDir)) }
        if let modelsRepo, Self.isLocalPath(modelsRepo) { paths.append(("MODELS_REPO", modelsRepo)) }
        if modelsRepo == nil { paths.append(("MODELS_DIR", modelsDir)) }
        if let gitSSHKey { paths.append(("GIT_SSH_KEY", gitSSHKey)) }
        if let inferenceLog { paths.append(("INFERENCE_LOG", inferenceLog)) }
        if let swiftc { paths.append(("SWIFTC", swiftc)) }
        return paths
    }

    /// `path` made absolute and standardized (`.` and `..` removed); an absolute path is only standardized.
    static func absolute(_ path: String, against directory: String) -> String {
        let joined = path.hasPrefix("/") ? path : (directory as NSString).appendingPathComponent(path)
        return (joined as NSString).standardizingPath
    }

    /// Whether a `MODELS_REPO` names a folder rather than a URL (`scheme://…`) or an scp-like `host:path`.
    static func isLocalPath(_ repository: String) -> Bool {
        if repository.contains("://") { return false }
        guard let colon = repository.firstIndex(of: ":") else { return true }
        return repository[..<colon].contains("/")
    }
}

/// A setting whose value cannot be used, naming the setting and what it accepts.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
