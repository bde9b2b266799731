import Foundation
import Logging
import PluginBuilder
import PluginRuntime
import ServingCore

/// One setting, defined once: its environment name (from which its flag and its `ServeOptions` property follow), its
/// help text, the value it has when unset, whether it is a secret, and how a value is checked and applied (the range
/// and the error that names it). `--help`, docs/configuration.md's "Configuration" and the `env` files are checked against these
/// (`SettingsTests`).
struct Setting: Sendable {
    let environment: String
    let help: String
    /// The value the server uses when the setting is unset, when that is one literal value (`nil`: unset means off,
    /// or the server derives it, as `help` says).
    var defaultValue: String? = nil
    let isSecret: Bool
    let apply: @Sendable (inout ServerConfiguration, String) throws -> Void

    /// `--max-body-bytes` for `MAX_BODY_BYTES`, `--base-url` for `baseUrl`.
    var flag: String {
        environment == "baseUrl" ? "base-url" : environment.lowercased().replacingOccurrences(of: "_", with: "-")
    }

    /// The flag in camel case, the name of its property in `ServeOptions`: `maxBodyBytes`.
    var property: String {
        let words = flag.split(separator: "-")
        return words[0] + words.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    /// The help with the default: what `--help` prints.
    var fullHelp: String {
        guard let defaultValue else { return help }
        return "\(help) (default: \(defaultValue.isEmpty ? "empty" : defaultValue))"
    }
}

extension ServerConfiguration {
    /// Every setting of docs/configuration.md's "Configuration", in the order `--help` and the `env` file list them.
    static let settings: [Setting] = [
        Setting(environment: "baseUrl", help: "Route prefix for models, the index and /all; empty serves models at /<Model>", defaultValue: "", isSecret: false)
        {
            config, value in
            config.baseUrl = try parseBaseUrl(value)
        },
        Setting(environment: "PORT", help: "TCP port to listen on", defaultValue: "8080", isSecret: false) { config, value in
            config.port = try parseInteger(value, setting: "PORT", in: 0...65535, expected: "a port number from 0 to 65535")
        },
        Setting(environment: "HOST", help: "Address to listen on", defaultValue: "0.0.0.0", isSecret: false) { config, value in
            guard !value.isEmpty else { throw invalid("HOST", value, "an address such as 0.0.0.0 or 127.0.0.1") }
            config.host = value
        },
        Setting(environment: "MODELS_REPO", help: "Git repository of model folders; unset serves MODELS_DIR", isSecret: false) { config, value in
            config.modelsRepo = value.isEmpty ? nil : value
        },
        Setting(
            environment: "MODELS_REPO_ALLOWED_SIGNERS",
            help: "SSH allowed signers file (git's format): a commit serves only if one of its keys signed it (default: unset, every commit)",
            isSecret: false
        ) { config, value in
            config.modelsRepoAllowedSigners = value.isEmpty ? nil : value
        },
        Setting(environment: "MODELS_BRANCH", help: "Branch of MODELS_REPO to serve", defaultValue: "main", isSecret: false) { config, value in
            guard !value.isEmpty, !value.contains(" ") else { throw invalid("MODELS_BRANCH", value, "a branch name") }
            config.modelsBranch = value
        },
        Setting(environment: "MODELS_DIR", help: "Folder of model folders served without a repository", defaultValue: "./models_serve", isSecret: false) {
            config, value in
            guard !value.isEmpty else { throw invalid("MODELS_DIR", value, "a folder path") }
            config.modelsDir = value
        },
        Setting(environment: "STATE_DIR", help: "Clone, exported versions and plugin cache", defaultValue: "./.autoserve", isSecret: false) { config, value in
            guard !value.isEmpty else { throw invalid("STATE_DIR", value, "a folder path") }
            config.stateDir = value
        },
        Setting(
            environment: "CACHE_DIR", help: "Built plugins, shareable by replicas on a ReadWriteMany volume (default: STATE_DIR/cache)", isSecret: false
        ) { config, value in
            config.cacheDir = value.isEmpty ? nil : value
        },
        Setting(
            environment: "CACHE_KEY", help: "Secret that seals CACHE_DIR's plugins; the replicas sharing it need the same (default: STATE_DIR/cache.key)",
            isSecret: true
        ) { config, value in
            // Empty is unset, as an empty field of a Kubernetes Secret leaves it.
            guard !value.isEmpty else {
                config.cacheKey = nil
                return
            }
            guard value.utf8.count >= 16 else {
                throw ConfigurationError(
                    "CACHE_KEY is too short (\(value.utf8.count) bytes): give at least 16 random bytes, like the output of openssl rand -hex 32")
            }
            config.cacheKey = Secret(value)
        },
        Setting(environment: "SYNC_INTERVAL", help: "Time between syncs, like 30s, 1m, 24h", defaultValue: "24h", isSecret: false) { config, value in
            config.syncInterval = try parseDuration(value, setting: "SYNC_INTERVAL")
        },
        Setting(environment: "SYNC_AT", help: "Daily sync time HH:MM in UTC (default: unset)", isSecret: false) { config, value in
            config.syncAtMinute = value.isEmpty ? nil : try parseTimeOfDay(value)
        },
        Setting(environment: "GIT_TOKEN", help: "Token for HTTPS remotes (secret; prefer the environment to the flag)", isSecret: true) { config, value in
            config.gitToken = value.isEmpty ? nil : Secret(value)
        },
        Setting(environment: "GIT_USERNAME", help: "User name sent with GIT_TOKEN (default: x-access-token)", isSecret: false) { config, value in
            config.gitUsername = value.isEmpty ? nil : value
        },
        Setting(environment: "GIT_SSH_KEY", help: "Path of a private key file for SSH remotes", isSecret: false) { config, value in
            config.gitSSHKey = value.isEmpty ? nil : value
        },
        Setting(environment: "WEBHOOK_SECRET", help: "Secret that verifies POST /hooks/git (secret)", isSecret: true) { config, value in
            config.webhookSecret = value.isEmpty ? nil : Secret(value)
        },
        Setting(environment: "ADMIN_TOKEN", help: "Bearer token for POST /<baseUrl>/-/sync (secret)", isSecret: true) { config, value in
            config.adminToken = value.isEmpty ? nil : Secret(value)
        },
        Setting(environment: "MAX_BODY_BYTES", help: "Largest request body in bytes", defaultValue: "1048576", isSecret: false) { config, value in
            config.maxBodyBytes = try parseInteger(
                value, setting: "MAX_BODY_BYTES", in: 1...maximumBodyBytes,
                expected: "a number of bytes from 1 to \(maximumBodyBytes) (the largest row a worker frame carries), like 1048576"
            )
        },
        Setting(environment: "MAX_BATCH_ROWS", help: "Most rows of one {\"rows\": [...]} request; more get 413", defaultValue: "10000", isSecret: false) {
            config, value in
            config.maxBatchRows = try parseInteger(
                value, setting: "MAX_BATCH_ROWS", in: 1...1_000_000, expected: "a number of rows from 1 to 1000000, like 10000")
        },
        Setting(
            environment: "MAX_ANSWER_BYTES", help: "Most bytes of outputs in one answer; a batch's rows past it get 413", defaultValue: "67108864",
            isSecret: false
        ) { config, value in
            config.maxAnswerBytes = try parseInteger(
                value, setting: "MAX_ANSWER_BYTES", in: 1024...(1 << 40), expected: "a number of bytes from 1024 to 1099511627776 (1 TiB), like 67108864")
        },
        Setting(
            environment: "MAX_WORKERS",
            help: "Most worker processes of every model together; a version that would pass it fails (default: from memory and cores)",
            isSecret: false
        ) { config, value in
            config.maxWorkers = try parseInteger(value, setting: "MAX_WORKERS", in: 1...100_000, expected: "a number of workers from 1 to 100000, like 256")
        },
        Setting(environment: "MAX_MODEL_BYTES", help: "Largest model folder in bytes; a bigger version is refused", defaultValue: "1073741824", isSecret: false)
        {
            config, value in
            config.maxModelBytes = try parseInteger(
                value, setting: "MAX_MODEL_BYTES", in: 1...(1 << 40), expected: "a number of bytes from 1 to 1099511627776 (1 TiB), like 1073741824"
            )
        },
        Setting(environment: "MAX_CONNECTIONS", help: "Most client connections at once; more get 503 (default: from the descriptor limit)", isSecret: false) {
            config, value in
            config.maxConnections = try parseInteger(
                value, setting: "MAX_CONNECTIONS", in: 1...10_000_000, expected: "a number of connections from 1 to 10000000, like 10000")
        },
        Setting(environment: "HEADER_TIMEOUT", help: "Longest time to receive a request's head", defaultValue: "10s", isSecret: false) { config, value in
            config.headerTimeout = try parseDuration(value, setting: "HEADER_TIMEOUT")
        },
        Setting(environment: "BODY_TIMEOUT", help: "Longest wait between two parts of a request's body", defaultValue: "30s", isSecret: false) {
            config, value in
            config.bodyTimeout = try parseDuration(value, setting: "BODY_TIMEOUT")
        },
        Setting(environment: "KEEPALIVE_TIMEOUT", help: "How long an idle kept-alive connection stays open", defaultValue: "60s", isSecret: false) {
            config, value in
            config.keepAliveTimeout = try parseDuration(value, setting: "KEEPALIVE_TIMEOUT")
        },
        Setting(
            environment: "SHUTDOWN_TIMEOUT", help: "Longest stop after SIGTERM; then requests in flight get 503 and the exit code is 1", defaultValue: "30s",
            isSecret: false
        ) { config, value in
            config.shutdownTimeout = try parseDuration(value, setting: "SHUTDOWN_TIMEOUT")
        },
        Setting(
            environment: "PEERS",
            help: "The fleet's replicas as host:port, comma-separated (a DNS name may name them all); a sync started here is asked of each (default: none)",
            isSecret: false
        ) { config, value in
            config.peers = value.isEmpty ? nil : value
        },
        Setting(
            environment: "SHUTDOWN_DELAY",
            help: "After SIGTERM, how long /readyz answers 503 draining while the server still answers, before it stops accepting", defaultValue: "0s",
            isSecret: false
        ) { config, value in
            config.shutdownDelay = try parseDuration(value, setting: "SHUTDOWN_DELAY", allowZero: true)
        },
        Setting(environment: "MODEL_TIMEOUT_MS", help: "Per-request limit for models whose model.yaml sets none", defaultValue: "10000", isSecret: false) {
            config, value in
            let milliseconds = try parseInteger(
                value, setting: "MODEL_TIMEOUT_MS", in: 1...ModelManifest.maximumTimeoutMilliseconds,
                expected: "a number of milliseconds from 1 to \(ModelManifest.maximumTimeoutMilliseconds) (24 h), like 10000"
            )
            config.modelTimeout = .milliseconds(milliseconds)
        },
        Setting(environment: "MODEL_ISOLATION", help: "process (each model in worker processes) or inprocess", defaultValue: "process", isSecret: false) {
            config, value in
            guard let isolation = ModelIsolation(rawValue: value.lowercased()) else {
                throw invalid("MODEL_ISOLATION", value, "process or inprocess")
            }
            config.modelIsolation = isolation
        },
        Setting(
            environment: "MODEL_SANDBOX", help: "strict (confine each worker as the kernel allows), required (refuse to start without every layer) or off",
            defaultValue: "strict", isSecret: false
        ) { config, value in
            guard let mode = SandboxPolicy.Mode(rawValue: value.lowercased()) else { throw invalid("MODEL_SANDBOX", value, "strict, required or off") }
            config.modelSandbox = mode
        },
        Setting(
            environment: "SANDBOX_ALLOW",
            help: "What a model's sandbox may grant when its model.yaml asks: Model:network, Model:read=/path (comma-separated)", isSecret: false
        ) { config, value in
            do {
                config.sandboxAllow = try SandboxGrant.parse(value)
            } catch {
                throw invalid("SANDBOX_ALLOW", value, "comma-separated Model:network and Model:read=/absolute/path (\(error))")
            }
        },
        Setting(
            environment: "MODEL_ENV", help: "Variables passed to every model's workers beside PATH, HOME, LANG, LC_*, TZ (comma-separated names)",
            isSecret: false
        ) {
            config, value in
            config.modelEnvironment = try parseModelEnvironment(value)
        },
        Setting(environment: "SWIFTC", help: "Compiler for model plugins (default: swiftc on PATH, else beside the Swift runtime)", isSecret: false) {
            config, value in
            config.swiftc = value.isEmpty ? nil : value
        },
        Setting(environment: "INFERENCE_LOG", help: "File that receives one JSON line per scored row (default: unset)", isSecret: false) { config, value in
            config.inferenceLog = value.isEmpty ? nil : value
        },
        Setting(environment: "INFERENCE_LOG_SAMPLE", help: "Fraction of rows INFERENCE_LOG keeps, from 0 to 1", defaultValue: "1", isSecret: false) {
            config, value in
            guard let fraction = Double(value), value.allSatisfy({ $0.isASCIIDigit || $0 == "." }), (0...1).contains(fraction) else {
                throw invalid("INFERENCE_LOG_SAMPLE", value, "a fraction from 0 to 1, like 0.1")
            }
            config.inferenceLogSample = fraction
        },
        Setting(environment: "INFERENCE_LOG_MAX_MB", help: "Size in MB at which INFERENCE_LOG is rotated", defaultValue: "100", isSecret: false) {
            config, value in
            config.inferenceLogMaxMB = try parseInteger(value, setting: "INFERENCE_LOG_MAX_MB", in: 1...(1 << 20), expected: "a number of MB from 1 to 1048576")
        },
        Setting(environment: "INFERENCE_LOG_KEEP", help: "Rotated INFERENCE_LOG files kept, .1 the newest", defaultValue: "5", isSecret: false) {
            config, value in
            config.inferenceLogKeep = try parseInteger(value, setting: "INFERENCE_LOG_KEEP", in: 0...1000, expected: "a number of files from 0 to 1000")
        },
        Setting(environment: "LOG_LEVEL", help: "trace, debug, info, notice, warning, error or critical", defaultValue: "info", isSecret: false) {
            config, value in
            guard let level = Logger.Level(rawValue: value.lowercased()) else {
                throw invalid("LOG_LEVEL", value, "trace, debug, info, notice, warning, error or critical")
            }
            config.logLevel = level
        },
    ]

    /// The original project's names, still accepted.
    static let aliases: [(old: String, new: String)] = [("gitPath", "MODELS_REPO"), ("usergit", "GIT_USERNAME"), ("password", "GIT_TOKEN")]

    /// The names `MODEL_ENV` may never pass to a worker: every secret (and its `_FILE`), and the settings that may
    /// hold one (a key file's path, a repository URL with credentials in it), under their current and original names.
    static let keptFromWorkers: Set<String> = {
        var names = Set(settings.filter(\.isSecret).flatMap { [$0.environment, "\($0.environment)_FILE"] })
        names.formUnion(["GIT_SSH_KEY", "MODELS_REPO"])
        for (old, new) in aliases where names.contains(new) { names.insert(old) }
        return names
    }()

    /// The variables every worker gets from the server's environment (docs/operations.md, "The sandbox"); `LC_*` too, and its own TMPDIR.
    static let workerDefaults: Set<String> = ["PATH", "HOME", "LANG", "TZ"]

    /// The environment a model's worker process starts with, by allowlist: `workerDefaults`, `LC_*`, and the names of
    /// `MODEL_ENV`. Nothing else of the server's environment reaches a model: not its settings, not the inference
    /// log's path, not an unrelated secret of the container (`AWS_SECRET_ACCESS_KEY`).
    public static func workerEnvironment(_ environment: [String: String], passing names: [String] = []) -> [String: String] {
        environment.filter { workerDefaults.contains($0.key) || $0.key.hasPrefix("LC_") || names.contains($0.key) }
    }

    /// `MODEL_ENV`: comma-separated variable names, none of them a setting that holds a secret.
    static func parseModelEnvironment(_ value: String) throws(ConfigurationError) -> [String] {
        let names = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for name in names {
            guard name.first?.isASCIIDigit == false, name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) else {
                throw invalid("MODEL_ENV", value, "comma-separated environment variable names (letters, digits and _), like FEATURE_STORE_URL,REGION")
            }
            if keptFromWorkers.contains(name) {
                throw ConfigurationError(
                    "MODEL_ENV names \(name), which holds a secret of the server (or a path or URL that may hold one); a model never gets it. "
                        + "Remove it from MODEL_ENV, and give the model what it needs in a variable of its own")
            }
        }
        return names
    }

    /// Reads every setting from an environment; values that cannot be used are errors, never ignored.
    public static func fromEnvironment(_ environment: [String: String]) throws(ConfigurationError) -> ServerConfiguration {
        var config = ServerConfiguration()
        for (old, new) in aliases {
            guard let value = environment[old] else { continue }
            if environment[new] == nil {
                try config.apply(new, value)
                config.notices.append("\(old) is deprecated; rename it to \(new)")
            } else {
                config.notices.append("\(old) is deprecated and ignored because \(new) is also set")
            }
        }
        for setting in settings {
            if let value = environment[setting.environment] { try config.apply(setting.environment, value) }
            // Every secret may come from a file instead (a mounted Kubernetes secret, a Docker secret): NAME_FILE.
            guard setting.isSecret, let path = environment["\(setting.environment)_FILE"] else { continue }
            guard environment[setting.environment] == nil else {
                throw ConfigurationError("both \(setting.environment) and \(setting.environment)_FILE are set; keep one")
            }
            try config.apply(setting.environment, try secretFile(path, setting: "\(setting.environment)_FILE"))
        }
        return config
    }

    /// A secret's file (`NAME_FILE`): its text without the line end that editors and `kubectl create secret` add.
    static func secretFile(_ path: String, setting: String) throws(ConfigurationError) -> String {
        var status = stat()
        guard stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            throw ConfigurationError("\(setting)=\(path) is not a readable file: \(String(cString: strerror(errno))); mount the secret there or fix the path")
        }
        guard status.st_size <= 65_536, let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("\(setting)=\(path) cannot be read as a secret (at most 64 KiB); check its size and permissions")
        }
        var text = String(decoding: data, as: UTF8.self)
        while let last = text.unicodeScalars.last, last == "\n" || last == "\r" { text.unicodeScalars.removeLast() }
        guard !text.isEmpty else { throw ConfigurationError("\(setting)=\(path) is empty; write the secret into it") }
        return text
    }

    /// Applies one value by its environment name (flags use the same names and checks).
    public mutating func apply(_ environmentName: String, _ value: String) throws(ConfigurationError) {
        guard let setting = Self.settings.first(where: { $0.environment == environmentName }) else {
            throw ConfigurationError("unknown setting \(environmentName)")
        }
        do {
            try setting.apply(&self, value)
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError("\(environmentName): \(error)")
        }
    }

    static func invalid(_ name: String, _ value: String, _ expected: String) -> ConfigurationError {
        ConfigurationError("\(name)=\(value) is not valid: expected \(expected)")
    }

    static func parseBaseUrl(_ value: String) throws(ConfigurationError) -> String {
        let trimmed = value.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./~")
        guard trimmed.allSatisfy({ allowed.contains($0) }) else {
            throw invalid("baseUrl", value, "a path prefix of letters, digits and - _ . / ~, like api/v1")
        }
        return trimmed
    }

    /// The longest duration a setting accepts: a year, far beyond any schedule, so no sum of parts overflows.
    static let maximumDurationMilliseconds = 366 * 86_400_000

    /// `30s`, `1m`, `24h`, `1h30m`, `500ms`, or a bare number of seconds; at most 366 days.
    static func parseDuration(_ value: String, setting: String, allowZero: Bool = false) throws(ConfigurationError) -> Duration {
        let expected = "a duration from \(allowZero ? "0s" : "1ms") to 366d like 30s, 1m, 24h or 1h30m"
        var milliseconds = 0
        var number = ""
        var rest = Substring(value)
        if !value.isEmpty, value.allSatisfy(\.isASCIIDigit) { rest = Substring(value + "s") }
        while let character = rest.first {
            if character.isASCIIDigit {
                number.append(character)
                rest = rest.dropFirst()
                continue
            }
            // Parts are bounded one by one, so that neither a part nor the sum can overflow.
            guard number.count <= 10, let amount = Int(number) else { throw invalid(setting, value, expected) }
            let unit: Int
            if rest.hasPrefix("ms") {
                unit = 1
                rest = rest.dropFirst(2)
            } else {
                switch character {
                case "s": unit = 1000
                case "m": unit = 60_000
                case "h": unit = 3_600_000
                case "d": unit = 86_400_000
                default: throw invalid(setting, value, expected)
                }
                rest = rest.dropFirst()
            }
            milliseconds += amount * unit
            guard milliseconds <= maximumDurationMilliseconds else { throw invalid(setting, value, expected) }
            number = ""
        }
        guard number.isEmpty, !value.isEmpty, milliseconds > 0 || allowZero else { throw invalid(setting, value, expected) }
        return .milliseconds(milliseconds)
    }

    /// A whole number within `range`, in decimal digits; anything else names the setting and the range.
    static func parseInteger(_ value: String, setting: String, in range: ClosedRange<Int>, expected: String) throws(ConfigurationError) -> Int {
        guard !value.isEmpty, value.count <= 19, value.allSatisfy(\.isASCIIDigit), let number = Int(value), range.contains(number) else {
            throw invalid(setting, value, expected)
        }
        return number
    }

    /// The largest `MAX_BODY_BYTES`: the variables of a row must fit in one frame of the worker protocol.
    static let maximumBodyBytes = WorkerFrame.maximumLength - 1024

    static func parseTimeOfDay(_ value: String) throws(ConfigurationError) -> Int {
        let parts = value.split(separator: ":")
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2, let hour = Int(parts[0]), let minute = Int(parts[1]),
            (0..<24).contains(hour), (0..<60).contains(minute)
        else { throw invalid("SYNC_AT", value, "a UTC time HH:MM like 03:30") }
        return hour * 60 + minute
    }
}

extension Character {
    /// `0` to `9` only: `isNumber` also accepts other scripts' digits and fractions, which `Int` cannot read.
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
