import Foundation
public import Logging
public import ModelSource
public import ServingCore
import Synchronization

/// The availability policy, in the shape of TensorFlow Serving's AspiredVersionsManager: `setAspiredVersions` only
/// records the version each model should serve and returns; one task per model brings that model to its newest
/// aspired version (build, then load), at most `buildParallelism` of them at once, and swaps it in the moment it is
/// ready. A newer aspired version supersedes one under way: its build is cancelled (the compiler's process group is
/// killed) and a load that ends meanwhile is released at once, never serving. A version that fails never takes a
/// working version off its route; a replaced version is released after its last request (`ServingVersion`); a
/// version whose runner breaks (workers that fail on every start) is `failed`. Every version moves through
/// `VersionLifecycle`. The request path reads `snapshot()`, an immutable copy.
public final class AspiredVersionsManager: Sendable {
    let adapter: any SourceAdapter
    let configuration: ModelManagerConfiguration
    let metrics: Metrics
    let logger: Logger
    let registry: Mutex<RegistrySnapshot>
    /// The models' tasks. Lock order: `work`, then `registry`.
    let work = Mutex(Work())
    let slots: BuildSlots

    struct Work {
        /// The task bringing each model to its aspired version, while it has one to bring up.
        var drivers: [String: Task<Void, Never>] = [:]
        /// The build under way for each model, cancelled when a newer version supersedes it.
        var builds: [String: (version: String, task: Task<Result<Loadable, ModelBuildError>, Never>)] = [:]
        /// Who waits for every model's task to end (`settled()`).
        var settledWaiters: [CheckedContinuation<Void, Never>] = []
        /// Set by `releaseAll()`: nothing new is brought up.
        var stopped = false
    }

    public init(adapter: any SourceAdapter, configuration: ModelManagerConfiguration, metrics: Metrics, logger: Logger, source: String) {
        self.adapter = adapter
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        slots = BuildSlots(max(1, configuration.buildParallelism))
        var initial = RegistrySnapshot()
        initial.readinessReason = "the first sync is reading the model source"
        initial.source = source
        registry = Mutex(initial)
    }

    /// The current registry: a copy, safe to read for the whole of a request.
    public func snapshot() -> RegistrySnapshot {
        registry.withLock { $0 }
    }

    /// The versions the source aspires to serve now: records them, starts the task of every model with a version to
    /// bring up, and returns how many models that is, without waiting for any build or load. Folders the source no
    /// longer lists are released.
    @discardableResult
    public func setAspiredVersions(_ snapshot: SourceSnapshot) async -> Int {
        let (started, cancelled, removed) = work.withLock { work -> (Int, [Task<Result<Loadable, ModelBuildError>, Never>], [ServingVersion]) in
            guard !work.stopped else { return (0, [], []) }
            let (names, superseded, removed) = plan(snapshot)
            var cancelled: [Task<Result<Loadable, ModelBuildError>, Never>] = []
            for name in superseded {
                if let build = work.builds.removeValue(forKey: name) { cancelled.append(build.task) }
            }
            for name in names where work.drivers[name] == nil {
                work.drivers[name] = Task { await self.drive(name) }
            }
            return (names.count, cancelled, removed)
        }
        for task in cancelled { task.cancel() }
        for version in removed { version.retire(successor: nil) }
        publishStateMetrics()
        return started
    }

    /// Waits until no model has a version to bring up (for `autoserve check`, `score` and tests).
    public func settled() async {
        await withCheckedContinuation { continuation in
            let now = work.withLock { work -> Bool in
                guard work.drivers.isEmpty else {
                    work.settledWaiters.append(continuation)
                    return false
                }
                return true
            }
            if now { continuation.resume() }
        }
    }

    /// Records a sync's outcome for the index and `/readyz`; before the source was ever read, a failure is why
    /// the server is not ready.
    public func record(_ report: SyncReport) {
        registry.withLock { state in
            state.lastSync = report
            if !report.succeeded, !state.sourceRead { state.readinessReason = "the first sync failed: \(report.message)" }
        }
    }

    /// Records rejected and removed folders and each model's newest aspired version; returns the models with a
    /// version to bring up, those whose version under way was superseded (their builds are cancelled), and the
    /// versions of removed folders (released once their last request is done).
    func plan(_ snapshot: SourceSnapshot) -> (bringUp: [String], superseded: [String], removed: [ServingVersion]) {
        registry.withLock { state in
            let firstRead = !state.sourceRead
            state.sourceRead = true
            state.commit = snapshot.commit
            var present = Set<String>()
            var bringUp: [String] = []
            var superseded: [String] = []
            var removed: [ServingVersion] = []
            for rejected in snapshot.rejected {
                present.insert(rejected.folderName)
                var status = state.models[rejected.folderName] ?? ModelStatus(folderName: rejected.folderName)
                status.lastError = FailureReport(version: nil, diagnostic: rejected.diagnostic, log: nil)
                if status.pending != nil { superseded.append(rejected.folderName) }
                status.pending = nil
                status.pendingFolder = nil
                state.models[rejected.folderName] = status
            }
            for folder in snapshot.models {
                let key = folder.name.rawValue
                present.insert(key)
                if configuration.takenRoutes.contains(key) {
                    let diagnostic = Diagnostic(file: key, message: "the route /\(key) is taken by the server's own endpoint; rename the folder or set baseUrl")
                    state.models[key] = ModelStatus(folderName: key, lastError: FailureReport(version: folder.version, diagnostic: diagnostic, log: nil))
                    continue
                }
                var status = state.models[key] ?? ModelStatus(folderName: key)
                if status.pending?.version == folder.version { continue }
                // Back to the version serving, or to a version that failed for its sources: nothing to bring up.
                let done =
                    status.serving?.version == folder.version
                    || (status.lastError.map { $0.version == folder.version && !$0.retryable } ?? false)
                if status.pending != nil { superseded.append(key) }
                if done {
                    status.pending = nil
                    status.pendingFolder = nil
                } else {
                    status.pending = VersionLifecycle(aspired: folder.version)
                    status.pendingFolder = folder
                    bringUp.append(key)
                }
                state.models[key] = status
            }
            for name in state.models.keys where !present.contains(name) {
                logger.info("model removed; it stops serving once its requests in flight finish", metadata: ["model": "\(name)"])
                if state.models[name]?.pending != nil { superseded.append(name) }
                if let serving = state.models[name]?.serving { removed.append(serving) }
                state.models[name] = nil
                state.firstRound.remove(name)
            }
            if firstRead { state.firstRound = Set(bringUp) }
            return (bringUp, superseded, removed)
        }
    }

    /// The model's task: brings `name` to its newest aspired version, one version after the other, until none is
    /// left to bring up.
    func drive(_ name: String) async {
        while let folder = next(name) {
            await slots.acquire()
            await bringUp(folder)
            slots.release()
        }
    }

    /// The folder of the version `name` should bring up next, or nil, and then the task ends (under both locks, so
    /// that a version aspired to meanwhile either is seen here or starts a new task).
    func next(_ name: String) -> ModelFolder? {
        let (folder, waiters) = work.withLock { work -> (ModelFolder?, [CheckedContinuation<Void, Never>]) in
            let folder =
                work.stopped
                ? nil
                : registry.withLock { state -> ModelFolder? in
                    guard let status = state.models[name], status.pending?.phase == .aspired else { return nil }
                    return status.pendingFolder
                }
            guard folder == nil else { return (folder, []) }
            work.drivers[name] = nil
            guard work.drivers.isEmpty else { return (nil, []) }
            defer { work.settledWaiters = [] }
            return (nil, work.settledWaiters)
        }
        for waiter in waiters { waiter.resume() }
        return folder
    }

    /// Moves `lifecycle` (the version of `folder`) to `phase` and shows it in the index as the model's version under
    /// way, when it is still the one aspired to; false, and `lifecycle` unmoved, when a newer version superseded it (or
    /// the folder went away).
    func advance(_ folder: ModelFolder, _ lifecycle: inout VersionLifecycle, to phase: VersionPhase) -> Bool {
        registry.withLock { state in
            let key = folder.name.rawValue
            guard var status = state.models[key], status.pending?.version == folder.version else { return false }
            lifecycle.move(to: phase)
            status.pending = lifecycle
            state.models[key] = status
            return true
        }
    }

    /// Builds and loads one version; on success it takes the route. `lifecycle` is this version's own, moved to its
    /// end whether or not the version is still the one aspired to.
    func bringUp(_ folder: ModelFolder) async {
        let logger = self.logger.with(model: folder.name, version: folder.shortVersion)
        var lifecycle = VersionLifecycle(aspired: folder.version)
        let superseded = { (lifecycle: inout VersionLifecycle, runner: (any ModelRunner)?) in
            if let runner {
                lifecycle.move(to: .releasing)
                runner.unload()
            }
            lifecycle.move(to: .released)
            logger.info("version superseded by a newer one before it served")
        }
        guard advance(folder, &lifecycle, to: .building) else { return superseded(&lifecycle, nil) }
        let build = Task { [adapter] () -> Result<Loadable, ModelBuildError> in
            do throws(ModelBuildError) { return .success(try await adapter.adapt(folder)) } catch { return .failure(error) }
        }
        let registered = work.withLock { work -> Bool in
            guard registry.withLock({ $0.models[folder.name.rawValue]?.pending?.version == folder.version }) else { return false }
            work.builds[folder.name.rawValue] = (folder.version, build)
            return true
        }
        if !registered { build.cancel() }
        let built = await build.value
        work.withLock { work in
            if work.builds[folder.name.rawValue]?.version == folder.version { work.builds[folder.name.rawValue] = nil }
        }
        let loadable: Loadable
        switch built {
        case .success(let value): loadable = value
        case .failure(let error):
            guard advance(folder, &lifecycle, to: .failed) else { return superseded(&lifecycle, nil) }
            return fail(folder, error, logger: logger)
        }
        guard advance(folder, &lifecycle, to: .loading) else { return superseded(&lifecycle, nil) }
        let runner: any ModelRunner
        do throws(ModelBuildError) {
            runner = try await loadable.load()
        } catch {
            guard advance(folder, &lifecycle, to: .failed) else {
                lifecycle.move(to: .failed)
                return logger.info("a superseded version failed to load", metadata: ["error": "\(error.diagnostic)"])
            }
            return fail(folder, error, logger: logger)
        }
        // Loaded: it takes the route if it is still the version aspired to, in one step under both locks.
        let swapped = work.withLock { work -> (version: ServingVersion, replaced: ServingVersion?)? in
            guard !work.stopped else { return nil }
            return registry.withLock { state -> (ServingVersion, ServingVersion?)? in
                let key = folder.name.rawValue
                guard var status = state.models[key], status.pending?.version == folder.version else { return nil }
                lifecycle.move(to: .serving)
                let version = ServingVersion(
                    name: folder.name, version: folder.version, runner: runner, loadedAt: Date(), typeName: loadable.typeName, summary: loadable.summary,
                    commit: state.commit, metrics: metrics, drift: loadable.drift, schemas: loadable.schemas, example: loadable.example,
                    explainRefusal: loadable.explainRefusal, lifecycle: lifecycle
                )
                let previous = status.serving
                status.serving = version
                status.pending = nil
                status.pendingFolder = nil
                status.lastError = nil
                state.models[key] = status
                return (version, previous)
            }
        }
        guard let swapped else { return superseded(&lifecycle, runner) }
        swapped.replaced?.retire(successor: swapped.version)
        publishStateMetrics()
        logger.info("model serving", metadata: ["replaced": "\(swapped.replaced.map { String($0.version.prefix(12)) } ?? "none")"])
        endFirstAttempt(folder.name.rawValue)
    }

    /// `name` finished its first attempt: when it was the last folder of the first sync, `/readyz` now answers by
    /// the models' states, which the log says once.
    func endFirstAttempt(_ name: String) {
        let readiness = registry.withLock { state -> (ready: Bool, reason: String)? in
            guard state.firstRound.remove(name) != nil, state.firstRound.isEmpty else { return nil }
            return state.readiness
        }
        guard let readiness else { return }
        logger.info("every model folder of the first sync had its first load", metadata: ["ready": "\(readiness.ready)", "readiness": "\(readiness.reason)"])
    }

    func fail(_ folder: ModelFolder, _ error: ModelBuildError, logger: Logger) {
        logger.error("version not served", metadata: ["error": "\(error.diagnostic)"])
        registry.withLock { state in
            let key = folder.name.rawValue
            guard var status = state.models[key], status.pending?.version == folder.version else { return }
            status.pending = nil
            status.pendingFolder = nil
            status.lastError = FailureReport(version: folder.version, diagnostic: error.diagnostic, log: error.log, retryable: error.retryable)
            state.models[key] = status
        }
        publishStateMetrics()
        endFirstAttempt(folder.name.rawValue)
    }

    /// Answers every request waiting for a model with 503 now: the server's stop ran out of time.
    public func abandonInFlight(_ reason: String) {
        for version in snapshot().servingVersions { version.runner.abandonPending(PredictionFailure(.unavailable, reason)) }
    }

    /// Stops bringing anything up (builds are cancelled) and releases every version: its workers stop once its
    /// last request is done.
    public func releaseAll() {
        let (drivers, builds, models) = work.withLock { work in
            work.stopped = true
            let models = registry.withLock { state in
                defer { state.models = [:] }
                return state.models
            }
            return (work.drivers.values, work.builds.values.map(\.task), models)
        }
        drivers.forEach { $0.cancel() }
        builds.forEach { $0.cancel() }
        for status in models.values { status.serving?.retire(successor: nil) }
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

/// At most `count` bring-ups at once (`buildParallelism`): a model's task waits here, its version `aspired`.
final class BuildSlots: Sendable {
    let state: Mutex<(free: Int, waiting: [CheckedContinuation<Void, Never>])>

    init(_ count: Int) {
        state = Mutex((count, []))
    }

    func acquire() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                guard state.free > 0 else {
                    state.waiting.append(continuation)
                    return false
                }
                state.free -= 1
                return true
            }
            if now { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiting.isEmpty else {
                state.free += 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}

extension Logger {
    /// This logger with the model's name and version in its metadata.
    public func with(model: ModelName, version: String) -> Logger {
        var logger = self
        logger[metadataKey: "model"] = "\(model)"
        logger[metadataKey: "version"] = "\(version)"
        return logger
    }
}
