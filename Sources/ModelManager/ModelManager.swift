import Foundation
public import Logging
public import ModelSource
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

/// What the frontend needs of the models: what serves now, a way to ask for a sync, fresh state gauges.
public protocol ModelServing: Sendable {
    /// The current registry: a copy, safe to read for the whole of a request.
    func snapshot() -> RegistrySnapshot
    /// Asks for a sync; returns the id of the sync that will serve the request.
    @discardableResult func requestSync(reason: String) -> Int
    /// Brings `autoserve_model_state` up to date (before a scrape).
    func publishStateMetrics()
}

/// Runs the pipeline: syncs the Source when asked (and on its schedule) and pushes the versions it aspires to
/// into the `AspiredVersionsManager`, which brings them up through a `SourceAdapter` (the app's `PluginAdapter`:
/// export, generate, compile, load). The manager knows its stages by their protocols only.
///
/// Syncs run one at a time, and each lasts as long as listing the source (the models' builds and loads run on
/// their own tasks); a sync requested during another queues one more, and a burst of requests costs at most that
/// one.
public final class ModelManager: Service, ModelServing, Sendable {
    let source: any ModelSourceProvider
    let configuration: ModelManagerConfiguration
    let metrics: Metrics
    let logger: Logger
    /// The availability policy, which the frontend reads through this manager.
    public let versions: AspiredVersionsManager
    let syncCounter = Atomic<Int>(0)
    /// When the scheduled sync is due, and how many syncs in a row have failed.
    let timing = Mutex<(due: Date?, failures: Int)>((nil, 0))
    /// The id of the sync requested and not started yet, which absorbs further requests.
    let queuedSync = Mutex<Int?>(nil)
    let triggers: AsyncStream<Int>
    let triggerContinuation: AsyncStream<Int>.Continuation

    public init(source: any ModelSourceProvider, adapter: any SourceAdapter, configuration: ModelManagerConfiguration, metrics: Metrics, logger: Logger) {
        self.source = source
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        versions = AspiredVersionsManager(adapter: adapter, configuration: configuration, metrics: metrics, logger: logger, source: source.displayName)
        (triggers, triggerContinuation) = AsyncStream<Int>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    public func snapshot() -> RegistrySnapshot {
        versions.snapshot()
    }

    public func publishStateMetrics() {
        versions.publishStateMetrics()
    }

    /// Waits until no model has a version to bring up (`autoserve check`, `score`, tests).
    public func settled() async {
        await versions.settled()
    }

    /// Answers every request waiting for a model with 503 now: the server's stop ran out of time.
    public func abandonInFlight(_ reason: String) {
        versions.abandonInFlight(reason)
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
        versions.releaseAll()
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

    /// One full pass: read the source, then record the versions it aspires to with the manager, which brings each
    /// model up on a task of its own: a sync lasts as long as listing the source, whatever the models take. Never
    /// throws: failures are recorded per model, or for the sync as a whole when the source cannot be read (`false`).
    @discardableResult
    public func sync(id: Int) async -> Bool {
        let started = Date()
        let snapshot: SourceSnapshot
        do {
            snapshot = try await source.sync()
        } catch {
            logger.error("sync failed; nothing that serves changed", metadata: ["sync_id": "\(id)", "error": "\(error.message)"])
            metrics.increment("autoserve_syncs_total", labels: ["failure"])
            versions.record(SyncReport(id: id, startedAt: started, finishedAt: Date(), succeeded: false, message: error.message))
            return false
        }
        for notice in snapshot.notices { logger.notice("\(notice)", metadata: ["sync_id": "\(id)"]) }
        let changed = await versions.setAspiredVersions(snapshot)
        let finished = Date()
        metrics.increment("autoserve_syncs_total", labels: ["success"])
        metrics.set("autoserve_last_sync_success_timestamp_seconds", to: finished.timeIntervalSince1970)
        let message = changed == 0 ? "no model changed" : "\(changed) new model version(s) to bring up"
        versions.record(SyncReport(id: id, startedAt: started, finishedAt: finished, succeeded: true, message: message))
        logger.info(
            "sync finished",
            metadata: [
                "sync_id": "\(id)", "commit": "\(snapshot.commit ?? "-")", "changed": "\(changed)",
                "seconds": "\(String(format: "%.2f", finished.timeIntervalSince(started)))",
            ])
        return true
    }
}
