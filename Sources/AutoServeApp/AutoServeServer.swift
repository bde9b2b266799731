import CSystemShims
import Foundation
public import HTTPFrontend
public import Hummingbird
public import Logging
public import ModelManager
import ModelSource
import NIOCore
import PluginBuilder
import PluginLoader
import PluginRuntime
import ServiceLifecycle
public import ServingCore
import Synchronization
import UnixSignals

/// The whole server: the stages assembled in pipeline order, ready to run.
///
/// `serve` and the integration tests both build it here, so the tests run exactly what users run. A class: as a
/// struct of this size, the debug build's async frame of `serve` crashed destroying it at the end of a stop (a bad
/// existential pointer, deterministic once `Scoring` grew by one word; `InferenceLogTests` saw it as status 11).
public final class AutoServeServer: Sendable {
    public let configuration: ServerConfiguration
    public let manager: ModelManager
    public let metrics: Metrics
    public let application: Application<ServeResponder>
    /// The HTTP frontend, which a stop with `SHUTDOWN_DELAY` drains first.
    public let responder: ServeResponder

    init(configuration: ServerConfiguration, manager: ModelManager, metrics: Metrics, application: Application<ServeResponder>, responder: ServeResponder) {
        self.configuration = configuration
        self.manager = manager
        self.metrics = metrics
        self.application = application
        self.responder = responder
    }

    /// Assembles the server; `onListening` receives the bound port (useful with `PORT=0`).
    public static func build(
        configuration given: ServerConfiguration,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws(ConfigurationError) -> AutoServeServer {
        let configuration = given.resolvingPaths(against: FileManager.default.currentDirectoryPath)
        for notice in configuration.notices { logger.warning("\(notice)") }
        for (setting, path) in configuration.resolvedPaths { logger.info("path", metadata: ["setting": "\(setting)", "path": "\(path)"]) }
        try StartupChecks.writableFolder(configuration.stateDir, setting: "STATE_DIR")
        if let cacheDir = configuration.cacheDir { try StartupChecks.writableFolder(cacheDir, setting: "CACHE_DIR") }
        try StartupChecks.stopTimes(delay: configuration.shutdownDelay, timeout: configuration.shutdownTimeout)
        try StartupChecks.sandbox(configuration, support: .current, logger: logger)
        try StartupChecks.allowedSigners(configuration, logger: logger)
        let metrics = Metrics()
        LogWriter.standardError.countDrops(in: metrics.counter("autoserve_log_lines_dropped_total"))
        let source = modelSource(configuration)
        let manager = ModelManager(
            source: source,
            reader: reader(configuration),
            compiler: await Self.compiler(configuration, logger: logger),
            loader: loader(configuration, metrics: metrics, logger: logger),
            configuration: managerConfiguration(configuration),
            metrics: metrics,
            logger: logger
        )
        var frontend = FrontendConfiguration()
        frontend.baseUrl = configuration.baseUrl
        frontend.maxBodyBytes = configuration.maxBodyBytes
        frontend.maxBatchRows = configuration.maxBatchRows
        frontend.maxAnswerBytes = configuration.maxAnswerBytes
        frontend.adminToken = configuration.adminToken
        frontend.webhookSecret = configuration.webhookSecret
        frontend.branch = configuration.modelsRepo == nil ? nil : configuration.modelsBranch
        let descriptors = StartupChecks.descriptorLimit()
        frontend.maxConnections = configuration.maxConnections ?? StartupChecks.defaultMaxConnections(descriptors: descriptors)
        frontend.timeouts.header = configuration.headerTimeout
        frontend.timeouts.body = configuration.bodyTimeout
        frontend.timeouts.keepAlive = configuration.keepAliveTimeout
        frontend.peers = try peerSync(configuration, prefix: frontend.prefix, metrics: metrics, logger: logger)
        frontend.inferenceLog = try inferenceLog(configuration, metrics: metrics, logger: logger)
        let peers = frontend.peers
        logger.info(
            "connections",
            metadata: [
                "max_connections": "\(frontend.maxConnections)", "descriptor_limit": "\(descriptors)",
            ])
        let responder = ServeResponder(manager: manager, configuration: frontend, metrics: metrics, logger: logger, serverName: "autoserve")
        let application = Application(
            responder: responder,
            server: .http1(configuration: .init(additionalChannelHandlers: responder.scoringHandlers())),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "autoserve"),
            services: [manager, SignalReloader(manager: manager, peers: peers), DriftGauges(manager: manager, metrics: metrics)],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                logger.info("listening", metadata: ["host": "\(configuration.host)", "port": "\(port)", "models": "\(source.displayName)"])
                peers?.listening(on: port)
                await onListening(port)
            },
            logger: logger
        )
        return AutoServeServer(configuration: configuration, manager: manager, metrics: metrics, application: application, responder: responder)
    }

    /// The inference log (`INFERENCE_LOG`), opened at start: a file that cannot be opened stops the server.
    static func inferenceLog(_ configuration: ServerConfiguration, metrics: Metrics, logger: Logger) throws(ConfigurationError) -> InferenceLog? {
        guard let path = configuration.inferenceLog else { return nil }
        var settings = InferenceLogSettings(path: path)
        settings.sample = configuration.inferenceLogSample
        settings.maxBytes = configuration.inferenceLogMaxMB << 20
        settings.keep = configuration.inferenceLogKeep
        do {
            let log = try InferenceLog(settings: settings, metrics: metrics, logger: logger)
            logger.info("inference log", metadata: ["path": "\(path)", "sample": "\(settings.sample)", "max_mb": "\(configuration.inferenceLogMaxMB)"])
            return log
        } catch {
            throw ConfigurationError(error.description)
        }
    }

    /// The fleet's other replicas (`PEERS`), asked with `ADMIN_TOKEN`, which they check.
    static func peerSync(_ configuration: ServerConfiguration, prefix: String, metrics: Metrics, logger: Logger) throws(ConfigurationError) -> PeerSync? {
        guard let peers = configuration.peers, !peers.isEmpty else { return nil }
        guard let token = configuration.adminToken else {
            throw ConfigurationError("PEERS needs ADMIN_TOKEN: a replica asks its peers for a sync with it; set the same ADMIN_TOKEN on every replica")
        }
        do {
            return try PeerSync.make(peers: peers, token: token, prefix: prefix, metrics: metrics, logger: logger)
        } catch {
            throw ConfigurationError(error.description)
        }
    }

    /// The git repository when `MODELS_REPO` is set, else the models folder as it is on disk.
    static func modelSource(_ configuration: ServerConfiguration) -> any ModelSourceProvider {
        guard let repository = configuration.modelsRepo else {
            return LocalModelSource(directory: configuration.modelsDir, stateDirectory: configuration.stateDir, maxModelBytes: configuration.maxModelBytes)
        }
        return GitModelSource(
            url: repository, branch: configuration.modelsBranch, stateDirectory: configuration.stateDir,
            username: configuration.gitUsername, token: configuration.gitToken?.value, sshKeyPath: configuration.gitSSHKey,
            maxModelBytes: configuration.maxModelBytes, allowedSigners: configuration.modelsRepoAllowedSigners
        )
    }

    /// Worker processes (the default) or plugins loaded into the server itself.
    static func loader(_ configuration: ServerConfiguration, metrics: Metrics, logger: Logger) -> any PluginLoading {
        switch configuration.modelIsolation {
        case .inprocess:
            return InProcessLoader(timeout: configuration.modelTimeout, logger: logger, metrics: metrics)
        case .process:
            var settings = WorkerSettings(executable: configuration.workerExecutable ?? workerExecutable())
            settings.timeout = configuration.modelTimeout
            settings.metrics = metrics
            settings.logger = logger
            settings.environment = ServerConfiguration.workerEnvironment(ProcessInfo.processInfo.environment, passing: configuration.modelEnvironment)
            settings.sandbox = SandboxPolicy(mode: configuration.modelSandbox)
            settings.grants = configuration.sandboxAllow
            let limit = configuration.maxWorkers ?? WorkerBudget.defaultLimit()
            settings.budget = WorkerBudget(limit: limit)
            logger.info("workers", metadata: ["max_workers": "\(limit)"])
            return ProcessLoader(settings: settings)
        }
    }

    /// `autoserve-worker`, built and installed beside `autoserve`.
    static func workerExecutable() -> String {
        URL(fileURLWithPath: executable()).deletingLastPathComponent().appendingPathComponent("autoserve-worker").path
    }

    /// The binary this process runs.
    static func executable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Reads each version's files in a helper process: `autoserve read-version`, this very binary (docs/operations.md, "Reliability").
    static func reader(_ configuration: ServerConfiguration) -> any DefinitionReading {
        HelperReading(executable: configuration.helperExecutable ?? executable())
    }

    static func compiler(_ configuration: ServerConfiguration, logger: Logger) async -> Result<PluginCompiler, ToolchainError> {
        do {
            let toolchain = try await Toolchain.locate(configured: configuration.swiftc)
            logger.info("compiler found", metadata: ["swiftc": "\(toolchain.swiftc)", "version": "\(toolchain.versionLine)"])
            let key = configuration.cacheKey.map { CacheKey(secret: $0.value, origin: "CACHE_KEY") }
            // The paths are resolved by now: a CACHE_DIR of its own is one that is not STATE_DIR/cache.
            if key == nil, let cacheDir = configuration.cacheDir, cacheDir != (configuration.stateDir as NSString).appendingPathComponent("cache") {
                logger.warning(
                    "CACHE_DIR is set without CACHE_KEY: plugins are sealed with this replica's own key (STATE_DIR/cache.key), so replicas sharing CACHE_DIR rebuild each other's; give them one CACHE_KEY"
                )
            }
            var compiler = PluginCompiler(
                toolchain: toolchain, stateDirectory: configuration.stateDir, cacheDirectory: configuration.cacheDir, cacheKey: key, logger: logger)
            // The compiler reads code from the repository: it runs confined as the workers do (docs/operations.md, "The sandbox").
            if configuration.modelSandbox != .off {
                compiler.confinement = CompilerConfinement(launcher: configuration.helperExecutable ?? executable())
            }
            logger.info("build cache", metadata: ["key": "\(compiler.cacheKey.origin)"])
            compiler.sweep()
            return .success(compiler)
        } catch {
            logger.error("no usable compiler; no model can be built", metadata: ["error": "\(error.message)"])
            return .failure(error)
        }
    }

    static func managerConfiguration(_ configuration: ServerConfiguration) -> ModelManagerConfiguration {
        var manager = ModelManagerConfiguration()
        if configuration.baseUrl.isEmpty { manager.takenRoutes = RouteTable.rootNames }
        if configuration.modelsRepo != nil {
            manager.schedule = SyncSchedule(interval: configuration.syncInterval, dailyAtMinute: configuration.syncAtMinute)
        }
        return manager
    }

    /// Bounds a stop by `SHUTDOWN_TIMEOUT`: from the first SIGTERM or SIGINT, a request still waiting for a model
    /// then gets 503, and the server exits with status 1 (a stop that finishes in time ends this task).
    func stopDeadline(_ timedOut: StopTimeout) -> Task<Void, Never> {
        let (timeout, manager, logger, log) = (configuration.shutdownTimeout, manager, application.logger, responder.inferenceLog)
        return Task {
            for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                try? await Task.sleep(for: timeout)
                guard !Task.isCancelled else { return }
                timedOut.happened.store(true, ordering: .relaxed)
                logger.error(
                    "the stop took longer than SHUTDOWN_TIMEOUT; the requests still in flight get 503",
                    metadata: [
                        "shutdown_timeout_seconds": "\(timeout.seconds)"
                    ])
                manager.abandonInFlight("the server is stopping and this request passed SHUTDOWN_TIMEOUT; retry on another replica")
                // The stop ends now that nothing waits for a model; if something else holds it, exit anyway.
                try? await Task.sleep(for: .seconds(5))
                guard !Task.isCancelled else { return }
                log?.close(timeout: .seconds(1))
                ProcessLoader.processEnds()
                exit(1)
            }
        }
    }

    /// On the first SIGTERM or SIGINT: `/readyz` answers 503 `draining` and connections close after their next
    /// answer, while the server keeps accepting and answering for `delay` (the time a load balancer takes to stop
    /// sending it connections); then the graceful stop begins.
    func drainOnSignal(then group: ServiceGroup, after delay: Duration) -> Task<Void, Never> {
        let (responder, logger) = (responder, application.logger)
        return Task {
            for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                logger.info("draining: /readyz answers 503 until the stop", metadata: ["shutdown_delay_seconds": "\(delay.seconds)"])
                responder.drain()
                try? await Task.sleep(for: delay)
                guard !Task.isCancelled else { return }
                await group.triggerGracefulShutdown()
                return
            }
        }
    }

    /// Makes the server's process non-dumpable, so that a process of the same user (a model's worker among
    /// them) cannot read its environment and memory, where the secrets are, from `/proc` (docs/operations.md, "Reliability").
    public static func protectProcessMemory() {
        _ = autoserve_make_undumpable()
    }

    /// Runs until SIGTERM or SIGINT: drains for `SHUTDOWN_DELAY` (docs/configuration.md, "Configuration"), stops accepting,
    /// finishes requests in flight, then stops the manager.
    public func run() async throws {
        let (host, port) = (configuration.host, configuration.port)
        let timedOut = StopTimeout()
        let deadline = stopDeadline(timedOut)
        defer { deadline.cancel() }
        let delay = configuration.shutdownDelay
        let group = ServiceGroup(
            configuration: .init(services: [application], gracefulShutdownSignals: delay == .zero ? [.sigterm, .sigint] : [], logger: application.logger)
        )
        let drain = delay == .zero ? nil : drainOnSignal(then: group, after: delay)
        defer { drain?.cancel() }
        // The rows queued for the inference log are written before the process ends, however the stop went.
        defer { responder.inferenceLog?.close() }
        do {
            try await group.run()
            if timedOut.happened.load(ordering: .relaxed) { throw timedOut }
            // What a Ctrl-C in a terminal (or `docker stop`) ends with: every request received was answered.
            application.logger.info("stopped: every request received was answered")
        } catch let error as StopTimeout {
            throw error
        } catch {
            guard let refused = error as? IOError, [EACCES, EADDRINUSE, EADDRNOTAVAIL].contains(refused.errnoCode) else { throw error }
            throw StartupChecks.listenRefused(refused, host: host, port: port)
        }
    }
}

/// Thrown by `run()` when the stop passed `SHUTDOWN_TIMEOUT`: the command exits with status 1.
public final class StopTimeout: Error, Sendable {
    let happened = Atomic<Bool>(false)

    public var description: String { "the stop took longer than SHUTDOWN_TIMEOUT" }
}

/// Rescans the models folder on SIGHUP, as operators expect of a daemon.
struct SignalReloader: Service {
    let manager: ModelManager
    let peers: PeerSync?

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            manager.requestSync(reason: "SIGHUP")
            peers?.forward(reason: "SIGHUP")
        }
    }
}
