public import ArgumentParser

/// Every setting as a flag; a flag overrides the environment variable of the same setting.
public struct ServeOptions: ParsableArguments {
    // Each property's name is its flag in camel case (`maxBodyBytes` is `--max-body-bytes`, `Setting.property`), the
    // help is the setting's: `given` finds the setting of each by the name, and `SettingsTests` checks that every
    // setting has its flag here.
    @Option(help: help("baseUrl")) var baseUrl: String?
    @Option(help: help("PORT")) var port: String?
    @Option(help: help("HOST")) var host: String?
    @Option(help: help("MODELS_REPO")) var modelsRepo: String?
    @Option(help: help("MODELS_REPO_ALLOWED_SIGNERS")) var modelsRepoAllowedSigners: String?
    @Option(help: help("MODELS_BRANCH")) var modelsBranch: String?
    @Option(help: help("MODELS_DIR")) var modelsDir: String?
    @Option(help: help("STATE_DIR")) var stateDir: String?
    @Option(help: help("CACHE_DIR")) var cacheDir: String?
    @Option(help: help("SYNC_INTERVAL")) var syncInterval: String?
    @Option(help: help("SYNC_AT")) var syncAt: String?
    @Option(help: help("GIT_TOKEN")) var gitToken: String?
    @Option(help: help("GIT_USERNAME")) var gitUsername: String?
    @Option(help: help("GIT_SSH_KEY")) var gitSshKey: String?
    @Option(help: help("WEBHOOK_SECRET")) var webhookSecret: String?
    @Option(help: help("ADMIN_TOKEN")) var adminToken: String?
    @Option(help: help("CACHE_KEY")) var cacheKey: String?
    @Option(help: help("MAX_BODY_BYTES")) var maxBodyBytes: String?
    @Option(help: help("MAX_BATCH_ROWS")) var maxBatchRows: String?
    @Option(help: help("MAX_ANSWER_BYTES")) var maxAnswerBytes: String?
    @Option(help: help("MAX_WORKERS")) var maxWorkers: String?
    @Option(help: help("MAX_MODEL_BYTES")) var maxModelBytes: String?
    @Option(help: help("MAX_CONNECTIONS")) var maxConnections: String?
    @Option(help: help("HEADER_TIMEOUT")) var headerTimeout: String?
    @Option(help: help("BODY_TIMEOUT")) var bodyTimeout: String?
    @Option(help: help("KEEPALIVE_TIMEOUT")) var keepaliveTimeout: String?
    @Option(help: help("SHUTDOWN_TIMEOUT")) var shutdownTimeout: String?
    @Option(help: help("SHUTDOWN_DELAY")) var shutdownDelay: String?
    @Option(help: help("PEERS")) var peers: String?
    @Option(help: help("MODEL_TIMEOUT_MS")) var modelTimeoutMs: String?
    @Option(help: help("MODEL_ISOLATION")) var modelIsolation: String?
    @Option(help: help("MODEL_SANDBOX")) var modelSandbox: String?
    @Option(help: help("SANDBOX_ALLOW")) var sandboxAllow: String?
    @Option(help: help("MODEL_ENV")) var modelEnv: String?
    @Option(help: help("SWIFTC")) var swiftc: String?
    @Option(help: help("INFERENCE_LOG")) var inferenceLog: String?
    @Option(help: help("INFERENCE_LOG_SAMPLE")) var inferenceLogSample: String?
    @Option(help: help("INFERENCE_LOG_MAX_MB")) var inferenceLogMaxMb: String?
    @Option(help: help("INFERENCE_LOG_KEEP")) var inferenceLogKeep: String?
    @Option(help: help("LOG_LEVEL")) var logLevel: String?

    public init() {}

    /// `--models-dir` when given on the command line (not from the environment).
    public var modelsDirFlag: String? { modelsDir }

    static func help(_ environment: String) -> ArgumentHelp {
        let setting = ServerConfiguration.settings.first { $0.environment == environment }!
        return ArgumentHelp("\(setting.fullHelp). Env: \(environment).")
    }

    /// The flags given, as their settings; a property that names no setting is a mistake `SettingsTests` catches.
    var given: [(setting: Setting, value: String)] {
        Mirror(reflecting: self).children.compactMap { child in
            guard let label = child.label, let value = (child.value as? Option<String?>)?.wrappedValue,
                let setting = ServerConfiguration.settings.first(where: { "_" + $0.property == label })
            else { return nil }
            return (setting, value)
        }
    }

    /// The settings that have a property here, for `SettingsTests`.
    static var propertyNames: [String] {
        Mirror(reflecting: ServeOptions()).children.compactMap { $0.label.map { String($0.dropFirst()) } }
    }

    /// The environment's configuration with these flags applied on top.
    public func configuration(environment: [String: String]) throws(ConfigurationError) -> ServerConfiguration {
        var configuration = try ServerConfiguration.fromEnvironment(environment)
        for (setting, value) in given {
            if setting.isSecret {
                configuration.notices.append(
                    "--\(setting.flag) is on the command line, which every process of the same user can read in /proc/<pid>/cmdline; "
                        + "give \(setting.environment) in the environment or \(setting.environment)_FILE instead")
            }
            do {
                try configuration.apply(setting.environment, value)
            } catch {
                throw ConfigurationError(error.message.replacingOccurrences(of: "\(setting.environment)=", with: "--\(setting.flag) "))
            }
        }
        return configuration
    }
}

extension ServerConfiguration {
    /// One line per setting, `NAME (--flag): help`, for the top-level `--help`.
    public static var environmentHelp: String {
        settings.map { "  \($0.environment) (--\($0.flag)): \($0.fullHelp)" }.joined(separator: "\n")
    }
}
