public import ArgumentParser

/// Every setting as a flag; a flag overrides the environment variable of the same setting.
public struct ServeOptions: ParsableArguments {
    @Option(name: .customLong("base-url"), help: help("baseUrl")) var baseUrl: String?
    @Option(help: help("PORT")) var port: String?
    @Option(help: help("HOST")) var host: String?
    @Option(name: .customLong("models-repo"), help: help("MODELS_REPO")) var modelsRepo: String?
    @Option(name: .customLong("models-branch"), help: help("MODELS_BRANCH")) var modelsBranch: String?
    @Option(name: .customLong("models-dir"), help: help("MODELS_DIR")) var modelsDir: String?
    @Option(name: .customLong("state-dir"), help: help("STATE_DIR")) var stateDir: String?
    @Option(name: .customLong("cache-dir"), help: help("CACHE_DIR")) var cacheDir: String?
    @Option(name: .customLong("sync-interval"), help: help("SYNC_INTERVAL")) var syncInterval: String?
    @Option(name: .customLong("sync-at"), help: help("SYNC_AT")) var syncAt: String?
    @Option(name: .customLong("git-token"), help: help("GIT_TOKEN")) var gitToken: String?
    @Option(name: .customLong("git-username"), help: help("GIT_USERNAME")) var gitUsername: String?
    @Option(name: .customLong("git-ssh-key"), help: help("GIT_SSH_KEY")) var gitSSHKey: String?
    @Option(name: .customLong("webhook-secret"), help: help("WEBHOOK_SECRET")) var webhookSecret: String?
    @Option(name: .customLong("admin-token"), help: help("ADMIN_TOKEN")) var adminToken: String?
    @Option(name: .customLong("max-body-bytes"), help: help("MAX_BODY_BYTES")) var maxBodyBytes: String?
    @Option(name: .customLong("max-batch-rows"), help: help("MAX_BATCH_ROWS")) var maxBatchRows: String?
    @Option(name: .customLong("max-answer-bytes"), help: help("MAX_ANSWER_BYTES")) var maxAnswerBytes: String?
    @Option(name: .customLong("max-workers"), help: help("MAX_WORKERS")) var maxWorkers: String?
    @Option(name: .customLong("max-model-bytes"), help: help("MAX_MODEL_BYTES")) var maxModelBytes: String?
    @Option(name: .customLong("max-connections"), help: help("MAX_CONNECTIONS")) var maxConnections: String?
    @Option(name: .customLong("header-timeout"), help: help("HEADER_TIMEOUT")) var headerTimeout: String?
    @Option(name: .customLong("body-timeout"), help: help("BODY_TIMEOUT")) var bodyTimeout: String?
    @Option(name: .customLong("keepalive-timeout"), help: help("KEEPALIVE_TIMEOUT")) var keepAliveTimeout: String?
    @Option(name: .customLong("shutdown-timeout"), help: help("SHUTDOWN_TIMEOUT")) var shutdownTimeout: String?
    @Option(name: .customLong("shutdown-delay"), help: help("SHUTDOWN_DELAY")) var shutdownDelay: String?
    @Option(name: .customLong("peers"), help: help("PEERS")) var peers: String?
    @Option(name: .customLong("model-timeout-ms"), help: help("MODEL_TIMEOUT_MS")) var modelTimeoutMs: String?
    @Option(name: .customLong("model-isolation"), help: help("MODEL_ISOLATION")) var modelIsolation: String?
    @Option(help: help("SWIFTC")) var swiftc: String?
    @Option(name: .customLong("inference-log"), help: help("INFERENCE_LOG")) var inferenceLog: String?
    @Option(name: .customLong("inference-log-sample"), help: help("INFERENCE_LOG_SAMPLE")) var inferenceLogSample: String?
    @Option(name: .customLong("inference-log-max-mb"), help: help("INFERENCE_LOG_MAX_MB")) var inferenceLogMaxMB: String?
    @Option(name: .customLong("inference-log-keep"), help: help("INFERENCE_LOG_KEEP")) var inferenceLogKeep: String?
    @Option(name: .customLong("log-level"), help: help("LOG_LEVEL")) var logLevel: String?

    public init() {}

    /// `--models-dir` when given on the command line (not from the environment).
    public var modelsDirFlag: String? { modelsDir }

    static func help(_ environment: String) -> ArgumentHelp {
        let setting = ServerConfiguration.settings.first { $0.environment == environment }!
        return ArgumentHelp("\(setting.help). Env: \(environment).")
    }

    /// The flags given, by the environment name of their setting.
    var given: [(String, String?)] {
        [
            ("baseUrl", baseUrl), ("PORT", port), ("HOST", host), ("MODELS_REPO", modelsRepo), ("MODELS_BRANCH", modelsBranch),
            ("MODELS_DIR", modelsDir), ("STATE_DIR", stateDir), ("CACHE_DIR", cacheDir), ("SYNC_INTERVAL", syncInterval), ("SYNC_AT", syncAt),
            ("GIT_TOKEN", gitToken), ("GIT_USERNAME", gitUsername), ("GIT_SSH_KEY", gitSSHKey), ("WEBHOOK_SECRET", webhookSecret),
            ("ADMIN_TOKEN", adminToken), ("MAX_BODY_BYTES", maxBodyBytes), ("MAX_BATCH_ROWS", maxBatchRows), ("MAX_ANSWER_BYTES", maxAnswerBytes),
            ("MAX_WORKERS", maxWorkers), ("MAX_MODEL_BYTES", maxModelBytes),
            ("MAX_CONNECTIONS", maxConnections),
            ("HEADER_TIMEOUT", headerTimeout), ("BODY_TIMEOUT", bodyTimeout), ("KEEPALIVE_TIMEOUT", keepAliveTimeout), ("SHUTDOWN_TIMEOUT", shutdownTimeout),
            ("SHUTDOWN_DELAY", shutdownDelay), ("PEERS", peers),
            ("MODEL_TIMEOUT_MS", modelTimeoutMs),
            ("MODEL_ISOLATION", modelIsolation), ("SWIFTC", swiftc), ("INFERENCE_LOG", inferenceLog), ("INFERENCE_LOG_SAMPLE", inferenceLogSample),
            ("INFERENCE_LOG_MAX_MB", inferenceLogMaxMB), ("INFERENCE_LOG_KEEP", inferenceLogKeep), ("LOG_LEVEL", logLevel),
        ]
    }

    /// The environment's configuration with these flags applied on top.
    public func configuration(environment: [String: String]) throws(ConfigurationError) -> ServerConfiguration {
        var configuration = try ServerConfiguration.fromEnvironment(environment)
        for case (let name, let value?) in given {
            do {
                try configuration.apply(name, value)
            } catch {
                let flag = "--" + name.lowercased().replacingOccurrences(of: "_", with: "-").replacingOccurrences(of: "baseurl", with: "base-url")
                throw ConfigurationError(error.message.replacingOccurrences(of: "\(name)=", with: "\(flag) "))
            }
        }
        return configuration
    }
}

extension ServerConfiguration {
    /// One line per setting, `NAME (--flag): help`, for the top-level `--help`.
    public static var environmentHelp: String {
        settings.map { setting in
            let flag = "--" + setting.environment.replacingOccurrences(of: "_", with: "-").lowercased().replacingOccurrences(of: "baseurl", with: "base-url")
            return "  \(setting.environment) (\(flag)): \(setting.help)"
        }.joined(separator: "\n")
    }
}
