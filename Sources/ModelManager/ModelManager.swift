import Foundation
public import Logging
public import ModelSource
public import PluginBuilder
public import PluginLoader
public import ServiceLifecycle
public import ServingCore
import Synchronization

/// What the manager needs beyond its stages.
public struct ModelManagerConfiguration: Sendable {
    /// How many plugins build at once; the core count by default.
    public var buildParallelism: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Folder names whose route another endpoint already takes (`healthz`… when `baseUrl` is empty).
    public var takenRoutes: Set<String> = []
    /// When to sync on its own; `nil` syncs only when asked (local mode: SIGHUP and the admin call).
    public var schedule: SyncSchedule?

    public init() {}
}

/// The AspiredVersionsManager: keeps every model at the newest version that builds, loads and passes its
/// examples, and never lets a failure take a working version off its route.
///
/// Syncs run one at a time; a sync requested during another queues one more. Each changed folder is
/// exported, generated, compiled and loaded on its own, in parallel up to the core count, and swapped in
/// the moment it is ready. The request path reads `snapshot()`, an immutable copy.
public final class ModelManager: Service, Sendable {
    let source: any ModelSourceProvider
    let compiler: Result<PluginCompiler, ToolchainError>
    let loader: any PluginLoading
    let configuration: ModelManagerConfiguration
    let metrics: Metrics
    let logger: Logger
    let registry: Mutex<RegistrySnapshot> = {
        var initial = RegistrySnapshot()
        initial.readinessReason = "the first sync is reading the model source"
        return Mutex(initial)
    }()
    let syncCounter = Atomic<Int>(0)
    /// When the scheduled sync is due, and how many syncs in a row have failed.
    let timing = Mutex<(due: Date?, failures: Int)>((nil, 0))
    /// The id of the sync requested and not started yet, which absorbs further requests.
    let queuedSync = Mutex<Int?>(nil)
    let triggers: AsyncStream<Int>
    let triggerContinuation: AsyncStream<Int>.Continuation

    public init(
        source: any ModelSourceProvider,
        compiler: Result<PluginCompiler, ToolchainError>,
        loader: any PluginLoading,
        configuration: ModelManagerConfiguration,
        metrics: Metrics,
        logger: Logger
    ) {
        self.source = source
        self.compiler = compiler
        self.loader = loader
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        (triggers, triggerContinuation) = AsyncStream<Int>.makeStream(bufferingPolicy: .bufferingNewest(1))
        registry.withLock { $0.source = source.displayName }
        Self.declareMetrics(metrics)
    }

    /// The current registry: a copy, safe to read for the whole of a request.
    public func snapshot() -> RegistrySnapshot {
        registry.withLock { $0 }
    }

    /// Asks for a sync; returns the id of the sync that will serve the request. A sync already queued (not yet
    /// started) absorbs this one, and its id is returned: a burst of pushes costs at most one more sync.
    @discardableResult
    public func requestSync(reason: String) -> Int {
        let (id, isNew) = queuedSync.withLock { queued -> (Int, Bool) in
            if let queued { return (queued, false) }
            let id = syncCounter.add(1, ordering: .relaxed).newValue
            queued = id
            return (id, true)
        }
        logger.info(isNew ? "sync requested" : "sync requested; the sync already queued covers it", metadata: ["reason": "\(reason)", "sync_id": "\(id)"])
        if isNew { triggerContinuation.yield(id) }
        return id
    }

    /// The first sync, then one sync per request (and per scheduled time) until graceful shutdown.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await self.syncAndSchedule(id: self.syncCounter.add(1, ordering: .relaxed).newValue)
                for await id in self.triggers.cancelOnGracefulShutdown() {
                    self.queuedSync.withLock { if $0 == id { $0 = nil } }
                    await self.syncAndSchedule(id: id)
                }
            }
            if configuration.schedule != nil {
                group.addTask { await self.requestScheduledSyncs() }
            }
            await group.next()
            group.cancelAll()
        }
        // The HTTP server has stopped and its requests are done: release every version, which stops workers.
        registry.withLock { $0.models = [:] }
    }

    /// Runs one sync and sets when the next scheduled one is due.
    func syncAndSchedule(id: Int) async {
        let succeeded = await sync(id: id)
        timing.withLock { timing in
            timing.failures = succeeded ? 0 : timing.failures + 1
            timing.due = configuration.schedule?.nextSync(after: Date(), consecutiveFailures: timing.failures)
        }
    }

    /// Wakes when a scheduled sync is due and asks for it; the sync that runs sets the next due time.
    func requestScheduledSyncs() async {
        while !Task.isCancelled {
            let fire = timing.withLock { timing -> Bool in
                guard let due = timing.due, due <= Date() else { return false }
                timing.due = nil
                return true
            }
            if fire { requestSync(reason: "schedule") }
            let wait = timing.withLock { $0.due }.map { min(max($0.timeIntervalSinceNow, 0.01), 1) } ?? 1
            try? await Task.sleep(for: .milliseconds(Int(wait * 1000)))
        }
    }

    /// One full pass: read the source, then bring every model to its version. Never throws: failures are
    /// recorded per model, or for the sync as a whole when the source cannot be read (`false`).
    @discardableResult
    public func sync(id: Int) async -> Bool {
        let started = Date()
        let snapshot: SourceSnapshot
        do {
            snapshot = try await source.sync()
        } catch {
            logger.error("sync failed; nothing that serves changed", metadata: ["sync_id": "\(id)", "error": "\(error.message)"])
            metrics.increment("autoserve_syncs_total", labels: ["failure"])
            registry.withLock { state in
                state.lastSync = SyncReport(id: id, startedAt: started, finishedAt: Date(), succeeded: false, message: error.message)
                if !state.sourceRead { state.readinessReason = "the first sync failed: \(error.message)" }
            }
            return false
        }
        for notice in snapshot.notices { logger.notice("\(notice)", metadata: ["sync_id": "\(id)"]) }
        let work = plan(snapshot)
        registry.withLock { state in
            state.sourceRead = true
            state.commit = snapshot.commit
        }
        publishStateMetrics()
        await withTaskGroup(of: Void.self) { group in
            var pending = work[...]
            var running = 0
            while running < max(1, configuration.buildParallelism), let folder = pending.popFirst() {
                group.addTask { await self.bringUp(folder, commit: snapshot.commit) }
                running += 1
            }
            while await group.next() != nil {
                if let folder = pending.popFirst() {
                    group.addTask { await self.bringUp(folder, commit: snapshot.commit) }
                }
            }
        }
        let finished = Date()
        metrics.increment("autoserve_syncs_total", labels: ["success"])
        metrics.set("autoserve_last_sync_success_timestamp_seconds", to: finished.timeIntervalSince1970)
        registry.withLock { state in
            let message = work.isEmpty ? "no model changed" : "\(work.count) model version(s) processed"
            state.lastSync = SyncReport(id: id, startedAt: started, finishedAt: finished, succeeded: true, message: message)
        }
        publishStateMetrics()
        logger.info("sync finished", metadata: [
            "sync_id": "\(id)", "commit": "\(snapshot.commit ?? "-")", "changed": "\(work.count)",
            "seconds": "\(String(format: "%.2f", finished.timeIntervalSince(started)))",
        ])
        return true
    }

    /// Records rejected and removed folders, and returns the folders whose version must be brought up.
    func plan(_ snapshot: SourceSnapshot) -> [ModelFolder] {
        registry.withLock { state in
            var present = Set<String>()
            for rejected in snapshot.rejected {
                present.insert(rejected.folderName)
                state.models[rejected.folderName] = ModelStatus(
                    folderName: rejected.folderName, state: .failed, lastError: FailureReport(version: nil, diagnostic: rejected.diagnostic, log: nil)
                )
            }
            var work: [ModelFolder] = []
            for folder in snapshot.models {
                let key = folder.name.rawValue
                present.insert(key)
                if configuration.takenRoutes.contains(key) {
                    let diagnostic = Diagnostic(file: key, message: "the route /\(key) is taken by the server's own endpoint; rename the folder or set baseUrl")
                    state.models[key] = ModelStatus(folderName: key, state: .failed, lastError: FailureReport(version: folder.version, diagnostic: diagnostic, log: nil))
                    continue
                }
                var status = state.models[key] ?? ModelStatus(folderName: key, state: .loading)
                // Unchanged, or this very version already failed: nothing to do until the folder changes.
                if status.serving?.version == folder.version { continue }
                if let failure = status.lastError, failure.version == folder.version, !failure.retryable { continue }
                status.pendingVersion = folder.version
                if status.serving == nil { status.state = .loading }
                state.models[key] = status
                work.append(folder)
            }
            for name in state.models.keys where !present.contains(name) {
                logger.info("model removed; it stops serving once its requests in flight finish", metadata: ["model": "\(name)"])
                state.models[name] = nil
            }
            return work
        }
    }

    /// Exports, generates, builds and loads one version; on success it takes the route.
    func bringUp(_ folder: ModelFolder, commit: String?) async {
        let logger = self.logger.with(model: folder.name, version: folder.shortVersion)
        let compiler: PluginCompiler
        switch self.compiler {
        case .success(let value): compiler = value
        case .failure(let error):
            return fail(folder, ModelBuildError(Diagnostic(message: error.message)), logger: logger)
        }
        let exported: String
        do {
            exported = try await source.export(folder)
        } catch {
            // A failed export may be the disk's; a refused tree is the same tree on the next sync and fails again.
            return fail(folder, ModelBuildError(Diagnostic(file: folder.name.rawValue, message: "cannot export the version: \(error)"), retryable: true), logger: logger)
        }
        let definition: ModelDefinition
        let built: BuiltPlugin
        do {
            definition = try ModelGenerator(buildIdentity: compiler.buildIdentity).definition(name: folder.name, version: folder.version, folder: exported)
            let sdk = try await compiler.prepareSDK()
            built = try await compiler.build(definition, sdk: sdk).get()
        } catch {
            metrics.increment("autoserve_model_builds_total", labels: [folder.name.rawValue, "failure"])
            return fail(folder, error, logger: logger)
        }
        if !built.fromCache {
            metrics.increment("autoserve_model_builds_total", labels: [folder.name.rawValue, "success"])
            metrics.observe("autoserve_build_duration_seconds", labels: [folder.name.rawValue], value: built.duration.seconds, buckets: Metrics.buildBuckets)
            logger.info("plugin built", metadata: ["seconds": "\(String(format: "%.2f", built.duration.seconds))"])
        }
        let runner: any ModelRunner
        do {
            runner = try await loader.load(built)
        } catch {
            metrics.increment("autoserve_plugin_loads_total", labels: [folder.name.rawValue, "failure"])
            return fail(folder, ModelBuildError(Diagnostic(file: folder.name.rawValue, message: error.message)), logger: logger)
        }
        metrics.increment("autoserve_plugin_loads_total", labels: [folder.name.rawValue, "success"])
        let version = ServingVersion(
            name: folder.name, version: folder.version, runner: runner, loadedAt: Date(),
            typeName: definition.entryPoint.typeName, summary: definition.manifest.description, commit: commit
        )
        let replaced = registry.withLock { state -> String? in
            guard var status = state.models[folder.name.rawValue], status.pendingVersion == folder.version else { return nil }
            let previous = status.serving?.version
            status.serving = version
            status.state = .ready
            status.pendingVersion = nil
            status.lastError = nil
            state.models[folder.name.rawValue] = status
            return previous ?? ""
        }
        publishStateMetrics()
        logger.info("model serving", metadata: ["replaced": "\(replaced.map { $0.isEmpty ? "none" : String($0.prefix(12)) } ?? "removed meanwhile")"])
    }

    func fail(_ folder: ModelFolder, _ error: ModelBuildError, logger: Logger) {
        logger.error("version not served", metadata: ["error": "\(error.diagnostic)"])
        registry.withLock { state in
            guard var status = state.models[folder.name.rawValue] else { return }
            status.pendingVersion = nil
            status.lastError = FailureReport(version: folder.version, diagnostic: error.diagnostic, log: error.log, retryable: error.retryable)
            status.state = status.serving == nil ? .failed : .ready
            state.models[folder.name.rawValue] = status
        }
        publishStateMetrics()
    }

    /// Answers every request waiting for a model with 503 now: the server's stop ran out of time.
    public func abandonInFlight(_ reason: String) {
        for version in snapshot().servingVersions { version.runner.abandonPending(PredictionFailure(.unavailable, reason)) }
    }

    /// Sets `autoserve_model_state` from each model's current state; also called before every scrape, since
    /// a version can break between syncs.
    public func publishStateMetrics() {
        let models = registry.withLock { $0.models }
        var series: [[String]: Double] = [:]
        for (name, status) in models {
            let current = status.currentState
            for state in [ModelState.loading, .ready, .failed] { series[[name, state.rawValue]] = current == state ? 1 : 0 }
        }
        metrics.replaceGauge("autoserve_model_state", with: series)
    }

    static func declareMetrics(_ metrics: Metrics) {
        metrics.declare("autoserve_syncs_total", type: "counter", help: "Syncs of the model source by result.", labels: ["result"])
        metrics.declare("autoserve_last_sync_success_timestamp_seconds", type: "gauge", help: "Unix time of the last successful sync.", labels: [])
        metrics.declare("autoserve_model_builds_total", type: "counter", help: "Plugin builds by model and result.", labels: ["model", "result"])
        metrics.declare("autoserve_build_duration_seconds", type: "histogram", help: "Plugin build durations.", labels: ["model"])
        metrics.declare("autoserve_plugin_loads_total", type: "counter", help: "Plugin loads (init and examples) by model and result.", labels: ["model", "result"])
        metrics.declare("autoserve_model_state", type: "gauge", help: "1 for the state each model is in.", labels: ["model", "state"])
    }
}

extension Logger {
    func with(model: ModelName, version: String) -> Logger {
        var logger = self
        logger[metadataKey: "model"] = "\(model)"
        logger[metadataKey: "version"] = "\(version)"
        return logger
    }
}
