import Foundation
public import Logging
public import ModelSource
import PluginBuilder
public import ServingCore
import Synchronization

/// The availability policy, as TensorFlow Serving's AspiredVersionsManager: the source pushes the versions it
/// aspires to serve; each changed one is adapted and loaded on its own, in parallel up to `buildParallelism`,
/// and swapped in the moment it is ready. A version that fails never takes a working version off its route; a
/// replaced version is released after its last request; a version whose runner breaks (workers that fail on
/// every start) is `failed`. The request path reads `snapshot()`, an immutable copy.
public final class AspiredVersionsManager: Sendable {
    let adapter: any SourceAdapter
    let configuration: ModelManagerConfiguration
    let metrics: Metrics
    let logger: Logger
    let registry: Mutex<RegistrySnapshot>

    public init(adapter: any SourceAdapter, configuration: ModelManagerConfiguration, metrics: Metrics, logger: Logger, source: String) {
        self.adapter = adapter
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        var initial = RegistrySnapshot()
        initial.readinessReason = "the first sync is reading the model source"
        initial.source = source
        registry = Mutex(initial)
    }

    /// The current registry: a copy, safe to read for the whole of a request.
    public func snapshot() -> RegistrySnapshot {
        registry.withLock { $0 }
    }

    /// The versions the source aspires to serve now: brings every model to its version and returns how many
    /// versions it processed. Folders the source no longer lists are released.
    @discardableResult
    public func setAspiredVersions(_ snapshot: SourceSnapshot) async -> Int {
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
        publishStateMetrics()
        return work.count
    }

    /// Records a sync's outcome for the index and `/readyz`; before the source was ever read, a failure is why
    /// the server is not ready.
    public func record(_ report: SyncReport) {
        registry.withLock { state in
            state.lastSync = report
            if !report.succeeded, !state.sourceRead { state.readinessReason = "the first sync failed: \(report.message)" }
        }
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
                    state.models[key] = ModelStatus(
                        folderName: key, state: .failed, lastError: FailureReport(version: folder.version, diagnostic: diagnostic, log: nil))
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

    /// Adapts and loads one version; on success it takes the route.
    func bringUp(_ folder: ModelFolder, commit: String?) async {
        let logger = self.logger.with(model: folder.name, version: folder.shortVersion)
        let loadable: Loadable
        let runner: any ModelRunner
        do throws(ModelBuildError) {
            loadable = try await adapter.adapt(folder)
            runner = try await loadable.load()
        } catch {
            return fail(folder, error, logger: logger)
        }
        let version = ServingVersion(
            name: folder.name, version: folder.version, runner: runner, loadedAt: Date(), typeName: loadable.typeName, summary: loadable.summary,
            commit: commit,
            metrics: metrics,
            drift: loadable.drift,
            schemas: loadable.schemas,
            example: loadable.example
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
            guard var status = state.models[folder.name.rawValue], status.pendingVersion == folder.version else { return }
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

    /// Releases every version (their workers stop once their last request is done).
    public func releaseAll() {
        registry.withLock { $0.models = [:] }
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
}

extension Logger {
    func with(model: ModelName, version: String) -> Logger {
        var logger = self
        logger[metadataKey: "model"] = "\(model)"
        logger[metadataKey: "version"] = "\(version)"
        return logger
    }
}
