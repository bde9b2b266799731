import Foundation
public import Logging
import NIOCore
import NIOPosix
public import PluginBuilder
public import PluginRuntime
public import ServingCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How a version's workers run (`MODEL_ISOLATION=process`).
public struct WorkerSettings: Sendable {
    /// The `autoserve-worker` binary, started once per worker.
    public var executable: String
    public var workers: Int = 1
    public var timeout: Duration = .seconds(10)
    public var memoryLimitMegabytes: Int?
    public var startTimeout: Duration = .seconds(120)
    public var metrics: Metrics?
    /// Where a worker's unplanned exit, its restart and what it prints are told.
    public var logger = Logger(label: "autoserve")
    /// The environment a worker starts with: the server's, less every secret (the server strips them).
    public var environment: [String: String] = ProcessInfo.processInfo.environment
    /// The bound on the workers of every model together (`MAX_WORKERS`); `nil`: no bound.
    public var budget: WorkerBudget?
    /// How each worker is confined (`MODEL_SANDBOX`, docs/operations.md, "The sandbox"); a model's grants are added per version.
    public var sandbox = SandboxPolicy(mode: .strict)
    /// What `SANDBOX_ALLOW` grants each model (by name) beyond the sandbox, when its model.yaml asks for it.
    public var grants: [String: SandboxGrant] = [:]
    /// Where each confined worker gets its private temporary folder.
    public var temporaryRoot = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp"

    public init(executable: String) {
        self.executable = executable
    }
}

/// A model version served by worker processes: a trap, a hang or runaway memory costs only the requests that
/// worker was serving.
///
/// Requests go round-robin to the live workers. A worker that dies is restarted with exponential backoff;
/// one that fails on every start marks the version as crash-looping. Releasing the last reference (the
/// version was replaced and drained) stops the workers, which returns their memory.
public final class ProcessModel: ModelRunner, WorkerReporting, MemoryWatched, Sendable {
    let plugin: BuiltPlugin
    let settings: WorkerSettings

    struct State {
        var workers: [WorkerConnection?]
        var next = 0
        var restarts = 0
        var lastCrash: String?
        var failedStarts = 0
        /// Workers of this version that died soon after they started, in a row: the restart backoff grows with
        /// them, so a model that traps on every request does not restart ten times a second.
        var quickDeaths = 0
        var stopped = false
    }

    /// A worker that lived this long before it died was healthy: its death does not grow the backoff.
    static let healthyLifetime: Duration = .seconds(30)

    let state: Mutex<State>
    /// Where the workers' output goes, a line per event (shared by the workers of this version: one rate limit).
    let output: ModelOutputLog

    init(plugin: BuiltPlugin, settings: WorkerSettings, workers: [WorkerConnection?]) {
        self.plugin = plugin
        self.settings = settings
        self.state = Mutex(State(workers: workers))
        self.output = ModelOutputLog(model: plugin.definition.name.rawValue, logger: settings.logger, metrics: settings.metrics)
    }

    /// Starts the workers and waits until each has loaded the model.
    static func start(_ plugin: BuiltPlugin, settings: WorkerSettings) async throws(PluginLoadError) -> ProcessModel {
        // The share of MAX_WORKERS is taken before any worker starts; the model gives it back when it is released.
        try settings.budget?.reserve(max(1, settings.workers), model: plugin.definition.name.rawValue)
        let model = ProcessModel(plugin: plugin, settings: settings, workers: Array(repeating: nil, count: max(1, settings.workers)))
        for slot in 0..<max(1, settings.workers) {
            let connection = try await WorkerConnection.start(
                executable: settings.executable, plugin: plugin, environment: settings.environment, sandbox: settings.sandbox,
                temporaryRoot: settings.temporaryRoot, output: model.output, startTimeout: settings.startTimeout
            ) { [weak model] exit in model?.workerExited(slot: slot, exit) }
            model.state.withLock { $0.workers[slot] = connection }
        }
        model.watchMemory()
        return model
    }

    /// Stops the workers and gives their share of MAX_WORKERS back: the manager calls it once the version's last
    /// request is done (docs/operations.md, "Reliability"). Idempotent; a model never unloaded (a run of `autoserve score`) is
    /// stopped when it is freed.
    public func unload() {
        let workers = state.withLock { state -> [WorkerConnection]? in
            guard !state.stopped else { return nil }
            state.stopped = true
            return state.workers.compactMap { $0 }
        }
        guard let workers else { return }
        settings.budget?.release(max(1, settings.workers))
        MemoryWatch.shared.forget(self)
        workers.forEach { $0.close() }
    }

    deinit {
        unload()
    }

    public func predict(variables: [UInt8], explain: Bool, completion: @escaping @Sendable (Prediction) -> Void) {
        let worker = state.withLock { state -> WorkerConnection? in
            for offset in 0..<state.workers.count {
                let slot = (state.next + offset) % state.workers.count
                if let worker = state.workers[slot] {
                    state.next = slot + 1
                    return worker
                }
            }
            return nil
        }
        guard let worker else {
            let reason = state.withLock { $0.lastCrash } ?? "it is starting"
            completion(.failure(PredictionFailure(.unavailable, "\(plugin.definition.name) is restarting after \(reason); retry shortly")))
            return
        }
        worker.send(variables, explain: explain, timeout: settings.timeout, completion: completion)
    }

    /// Three failed starts in a row: the version cannot serve until a new one replaces it.
    public var brokenReason: String? {
        state.withLock { state in
            state.failedStarts >= 3 ? "its workers fail on every start (last: \(state.lastCrash ?? "unknown")); push a fixed version" : nil
        }
    }

    public func abandonPending(_ failure: PredictionFailure) {
        for worker in state.withLock({ $0.workers.compactMap { $0 } }) { worker.abandonPending(failure) }
    }

    /// The mode and the layers the first live worker applied, as its hello named them.
    public var sandbox: String? {
        guard let worker = state.withLock({ $0.workers.lazy.compactMap { $0 }.first }) else { return nil }
        let layers = worker.sandboxLayers.withLock { $0 }
        guard settings.sandbox.mode != .off else { return "off" }
        let granted = (settings.sandbox.network ? ["network"] : []) + settings.sandbox.readable.map { "read \($0)" }
        return "\(settings.sandbox.mode.rawValue) (\(layers)\(granted.isEmpty ? "" : "; granted " + granted.joined(separator: ", ")))"
    }

    public func workerReport() -> WorkerReport {
        state.withLock { state in
            WorkerReport(pids: state.workers.compactMap { $0?.pid }, restarts: state.restarts, lastCrash: state.lastCrash)
        }
    }

    /// Records how a worker ended and starts its replacement after a backoff.
    func workerExited(slot: Int, _ exit: WorkerExit) {
        let failures = state.withLock { state -> Int? in
            let lifetime = state.workers[slot].map { ContinuousClock.now - $0.startedAt } ?? .zero
            state.workers[slot] = nil
            guard !state.stopped else { return nil }
            state.restarts += 1
            // A crash or a memory kill soon after the start is the model's doing, again and again; a timeout kill is
            // the server's answer to one hung row, and the restart should be quick.
            switch exit {
            case .crashed, .overMemory: state.quickDeaths = lifetime < Self.healthyLifetime ? state.quickDeaths + 1 : 0
            case .timedOut, .stopped: state.quickDeaths = 0
            }
            switch exit {
            case .crashed(let how): state.lastCrash = "a crash (\(how))"
            case .timedOut: state.lastCrash = "a request over its timeout"
            case .overMemory(let megabytes): state.lastCrash = "using more than \(megabytes) MB"
            case .stopped: state.lastCrash = "a stop"
            }
            return state.failedStarts + state.quickDeaths - 1
        }
        guard let failures else { return }
        settings.metrics?.increment("autoserve_worker_restarts_total", labels: [plugin.definition.name.rawValue, exit.cause])
        settings.logger.warning(
            "worker exited; restarting it",
            metadata: [
                "model": "\(plugin.definition.name)", "version": "\(plugin.definition.version.prefix(12))", "cause": "\(exit.cause)",
                "detail": "\(exit.detail)", "restart_in_seconds": "\(Self.backoff(after: failures))",
            ])
        Task { [weak self] in await self?.restart(slot: slot, after: failures) }
    }

    private func restart(slot: Int, after failures: Int) async {
        try? await Task.sleep(for: .milliseconds(Int(Self.backoff(after: failures) * 1000)))
        guard !state.withLock({ $0.stopped }) else { return }
        do throws(PluginLoadError) {
            let connection = try await WorkerConnection.start(
                executable: settings.executable, plugin: plugin, environment: settings.environment, sandbox: settings.sandbox,
                temporaryRoot: settings.temporaryRoot, output: output, startTimeout: settings.startTimeout
            ) { [weak self] exit in self?.workerExited(slot: slot, exit) }
            let keep = state.withLock { state -> Bool in
                guard !state.stopped else { return false }
                state.workers[slot] = connection
                state.failedStarts = 0
                return true
            }
            if !keep { connection.close() }
        } catch {
            let failures = state.withLock { state -> Int in
                state.failedStarts += 1
                state.lastCrash = "a failed start: \(error.message)"
                return state.failedStarts
            }
            await restart(slot: slot, after: failures)
        }
    }

    /// Seconds before a restart: 0.1 doubling with each failed start or quick death in a row, up to 30.
    static func backoff(after failures: Int) -> Double { min(0.1 * pow(2, Double(min(max(failures, 0), 16))), 30) }

    /// Stops any worker whose resident memory passes `memory_mb`; it is restarted like a crashed one.
    private func watchMemory() {
        guard settings.memoryLimitMegabytes != nil else { return }
        MemoryWatch.shared.watch(self)
    }

    func checkMemory() {
        guard let limit = settings.memoryLimitMegabytes else { return }
        for worker in state.withLock({ $0.workers.compactMap { $0 } }) {
            if let bytes = worker.residentBytes, bytes > limit << 20 { worker.kill(because: .overMemory(limit)) }
        }
    }
}

/// Loads each version into worker processes (`MODEL_ISOLATION=process`), then runs its examples through them.
public struct ProcessLoader: PluginLoading {
    let settings: WorkerSettings

    /// The sandbox of a model whose model.yaml asks for more (docs/operations.md, "The sandbox"): what it asks, if
    /// `SANDBOX_ALLOW` grants all of it; otherwise the version fails, naming what is missing and both fixes.
    static func granted(_ request: SandboxRequest, to model: String, by grant: SandboxGrant?, base: SandboxPolicy) throws(PluginLoadError) -> SandboxPolicy {
        let grant = grant ?? SandboxGrant()
        var refused: [String] = []
        if request.network, !grant.network { refused.append("network") }
        for path in request.read where !grant.allowsReading(path) { refused.append("read=\(path)") }
        guard refused.isEmpty else {
            throw PluginLoadError(
                "model.yaml asks the sandbox for \(refused.joined(separator: " and ")), which SANDBOX_ALLOW does not grant \(model); "
                    + "an operator who trusts the model adds \(refused.map { "\(model):\($0)" }.joined(separator: ",")) to SANDBOX_ALLOW, "
                    + "or remove the request from model.yaml")
        }
        var policy = base
        policy.network = request.network
        policy.readable = request.read
        return policy
    }

    public init(settings: WorkerSettings) {
        self.settings = settings
    }

    /// What a command that started workers calls as it ends: the temporary folders of the workers still running or
    /// not reaped yet are removed. A worker stopped a moment before is reaped only after the process would have
    /// exited, and the kernel then ends it (`PR_SET_PDEATHSIG`) with nobody left to remove its folder.
    public static func processEnds() {
        WorkerConnection.removeLeftoverTemporaryFolders()
    }

    public func load(_ plugin: BuiltPlugin) async throws(PluginLoadError) -> any ModelRunner {
        var settings = self.settings
        let manifest = plugin.definition.manifest
        if let workers = manifest.workers { settings.workers = workers }
        if let timeout = manifest.timeoutMilliseconds { settings.timeout = .milliseconds(timeout) }
        settings.memoryLimitMegabytes = manifest.memoryMegabytes
        if let request = manifest.sandbox, settings.sandbox.mode != .off {
            settings.sandbox = try Self.granted(
                request, to: plugin.definition.name.rawValue, by: settings.grants[plugin.definition.name.rawValue], base: settings.sandbox)
        }
        let model = try await ProcessModel.start(plugin, settings: settings)
        try await ExampleRunner.check(model, examples: manifest.examples, name: plugin.definition.name)
        return model
    }
}
