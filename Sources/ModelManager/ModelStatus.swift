public import Foundation
import ModelSource
public import ServingCore
public import Synchronization

/// A model's state in the index: `ready` while some version serves, `loading` before its first version is
/// ready, `failed` when no version serves and the last attempt failed.
public enum ModelState: String, Sendable, Codable {
    case loading, ready, failed
}

/// A version that serves requests: the runner and what the index and the response headers show.
///
/// A request holds one of these from start to end (`predict`), so a swap never changes the version a request runs
/// on. Its release is a transition of its lifecycle, not a `deinit`: the manager moves a replaced or removed
/// version to `releasing`, and the last request to finish moves it to `released`, which unloads its runner
/// (stops its workers).
public final class ServingVersion: Sendable {
    public let name: ModelName
    public let version: String
    public let runner: any ModelRunner
    public let loadedAt: Date
    public let typeName: String
    public let summary: String?
    public let commit: String?
    /// The handles its requests count themselves with.
    public let instruments: RequestInstruments
    /// Its live drift, when its folder carries a reference sample.
    public let drift: (any DriftObserving)?
    /// Its variables' and output's JSON Schemas, and its manifest's first example (docs/http-api.md, "OpenAPI").
    public let schemas: ModelSchemas
    public let example: JSONValue?
    /// Why `{"explain": true}` is refused (docs/explanations.md), or `nil` when its plugin explains.
    public let explainRefusal: String?
    /// The rows a batch keeps in flight when it starts: where the last batch's window ended, eight before the first
    /// (docs/http-api.md, "HTTP API").
    public let batchWindow = Atomic<Int>(8)
    /// `serving`, `releasing` or `released`.
    let lifecycle: Mutex<VersionLifecycle>
    /// Twice the requests in flight, plus 1 once the version is `releasing`; `released` is -1, which no request can
    /// hold any more.
    let holders = Atomic<Int>(0)
    /// The version that replaced this one, for a request that read the registry before the swap and reached the
    /// runner after the release.
    let successor = Mutex<ServingVersion?>(nil)

    public init(
        name: ModelName, version: String, runner: any ModelRunner, loadedAt: Date, typeName: String, summary: String?, commit: String?, metrics: Metrics,
        drift: (any DriftObserving)? = nil, schemas: ModelSchemas = ModelSchemas(), example: JSONValue? = nil, explainRefusal: String? = nil,
        lifecycle: VersionLifecycle? = nil
    ) {
        self.explainRefusal = explainRefusal
        self.lifecycle = Mutex(lifecycle ?? VersionLifecycle(serving: version))
        self.drift = drift
        self.schemas = schemas
        self.example = example
        instruments = RequestInstruments(metrics: metrics, model: name.rawValue, version: version)
        self.name = name
        self.version = version
        self.runner = runner
        self.loadedAt = loadedAt
        self.typeName = typeName
        self.summary = summary
        self.commit = commit
    }
}

extension ServingVersion {
    /// Scores one row on this version, holding it until the answer: a version that leaves the route meanwhile is
    /// released only after. A request that reaches a version already released is answered by its successor.
    public func predict(variables: [UInt8], explain: Bool = false, completion: @escaping @Sendable (Prediction) -> Void) {
        guard hold() else {
            guard let next = successor.withLock({ $0 }) else {
                return completion(.failure(PredictionFailure(.unavailable, "\(name) was removed from the model source")))
            }
            return next.predict(variables: variables, explain: explain, completion: completion)
        }
        if explain, let refusal = explainRefusal {
            letGo()
            return completion(.failure(PredictionFailure(.explainUnsupported, refusal)))
        }
        runner.predict(variables: variables, explain: explain) { prediction in
            completion(prediction)
            self.letGo()
        }
    }

    /// The phase of its lifecycle: `serving`, `releasing` or `released`.
    public var phase: VersionPhase { lifecycle.withLock { $0.phase } }

    /// Counts a request in; false once the version is released.
    func hold() -> Bool {
        var current = holders.load(ordering: .acquiring)
        while current >= 0 {
            let (exchanged, original) = holders.compareExchange(expected: current, desired: current + 2, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Counts a request out; the last one out of a releasing version releases it.
    func letGo() {
        if holders.subtract(2, ordering: .acquiringAndReleasing).newValue == 1 { releaseIfIdle() }
    }

    /// `serving` → `releasing`: no new request reaches it from the registry; `successor` answers the stragglers.
    /// Released now when no request holds it.
    func retire(successor next: ServingVersion?) {
        successor.withLock { $0 = next }
        lifecycle.withLock { $0.move(to: .releasing) }
        if holders.add(1, ordering: .acquiringAndReleasing).newValue == 1 { releaseIfIdle() }
    }

    /// `releasing` → `released`, once: unloads the runner.
    private func releaseIfIdle() {
        guard holders.compareExchange(expected: 1, desired: -1, ordering: .acquiringAndReleasing).exchanged else { return }
        lifecycle.withLock { $0.move(to: .released) }
        runner.unload()
    }
}

/// Why a version did not take its route: the diagnostic, the build log excerpt and when it happened.
public struct FailureReport: Sendable, Hashable {
    public var version: String?
    public var diagnostic: Diagnostic
    public var log: String?
    /// When it happened; `nil` for a version that broke while serving (it is noticed when asked).
    public var at: Date?
    /// Whether the next sync tries this version again (the failure was the build's, not the sources').
    public var retryable: Bool

    public init(version: String?, diagnostic: Diagnostic, log: String?, at: Date? = Date(), retryable: Bool = false) {
        self.version = version
        self.diagnostic = diagnostic
        self.log = log.map(Self.excerpt)
        self.at = at
        self.retryable = retryable
    }

    /// The last 4 KiB of a build log: enough for swiftc's errors, small enough for the index.
    static func excerpt(_ log: String) -> String {
        guard log.utf8.count > 4096 else { return log }
        return "…" + String(decoding: log.utf8.suffix(4096), as: UTF8.self)
    }
}

/// Everything the index knows about one model name: the version serving, the version being brought up (its
/// lifecycle) and the last version that failed.
public struct ModelStatus: Sendable {
    public var folderName: String
    public var serving: ServingVersion?
    /// The newest version the source aspires to, while it is `aspired`, `building` or `loading`.
    public internal(set) var pending: VersionLifecycle?
    /// The folder of `pending`, which the model's task brings up.
    var pendingFolder: ModelFolder?
    public var lastError: FailureReport?

    public init(folderName: String, serving: ServingVersion? = nil, lastError: FailureReport? = nil) {
        self.folderName = folderName
        self.serving = serving
        self.lastError = lastError
    }

    /// `ready` while a version serves, `loading` while none does and one is being brought up, `failed` otherwise.
    public var state: ModelState {
        if serving != nil { return .ready }
        return pending == nil ? .failed : .loading
    }

    /// The version being brought up, if any.
    public var pendingVersion: String? { pending?.version }

    /// The state the index, `/readyz` and `autoserve_model_state` all report: `state`, except that a version
    /// whose runner broke after it took the route (workers that fail on every start) is `failed`.
    public var currentState: ModelState {
        if state == .ready, serving?.runner.brokenReason != nil { return .failed }
        return state
    }

    /// The error the index shows: the last failed version's, or why the serving version broke.
    public var currentError: FailureReport? {
        if let lastError { return lastError }
        guard let serving, let reason = serving.runner.brokenReason else { return nil }
        return FailureReport(version: serving.version, diagnostic: Diagnostic(message: "\(folderName): \(reason)"), log: nil, at: nil)
    }

    /// The serving version's worker processes, when it runs in workers.
    public var workers: WorkerReport? {
        (serving?.runner as? any WorkerReporting)?.workerReport()
    }
}

/// The outcome of one sync, for the index and `/readyz`.
public struct SyncReport: Sendable {
    public var id: Int
    public var startedAt: Date
    public var finishedAt: Date
    public var succeeded: Bool
    public var message: String

    public init(id: Int, startedAt: Date, finishedAt: Date, succeeded: Bool, message: String) {
        self.id = id
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.succeeded = succeeded
        self.message = message
    }
}

/// An immutable view of every model: what one request reads, with one lock held for a copy.
public struct RegistrySnapshot: Sendable {
    public var models: [String: ModelStatus] = [:] {
        didSet { indexServing() }
    }
    /// Every version serving now, in name order: `/all`'s models, sorted once per change rather than per row.
    public private(set) var servingVersions: [ServingVersion] = []
    /// The models without a version serving, in name order, with their state: `/all`'s errors.
    public private(set) var notServing: [(name: String, status: ModelStatus)] = []
    /// True once a sync has read the model source (listed the folders and their versions).
    public var sourceRead = false
    /// The folders the first read of the source found whose first version has not finished its first attempt
    /// (serving, or failed with a reason); the server is not ready before this set is empty.
    public var firstRound: Set<String> = []
    /// Why the server is not ready before the source was read.
    public var readinessReason = "the first sync has not started"
    public var commit: String?
    public var lastSync: SyncReport?
    public var source: String = ""

    public init() {}

    /// Whether the server should take traffic (`/readyz`), and why (docs/http-api.md, "HTTP API").
    ///
    /// Not ready until the source was read and every folder it held then finished its first attempt, as Triton's
    /// strict readiness and MLServer: a client that waits for ready never meets `model_loading` for a model of that
    /// first round. Then ready while some model serves, or when the source holds no model folder at all; a server
    /// whose every model failed takes no traffic. A folder added later, or a slow new version, does not make a
    /// serving server unready.
    public var readiness: (ready: Bool, reason: String) {
        guard sourceRead else { return (false, readinessReason) }
        if !firstRound.isEmpty {
            let names = firstRound.sorted()
            let shown = names.prefix(10).joined(separator: ", ") + (names.count > 10 ? " and \(names.count - 10) more" : "")
            return (false, "loading the first version of \(names.count) of \(models.count) model(s): \(shown)")
        }
        guard !models.isEmpty else { return (true, "ready; the source has no model folder") }
        let states = models.values.map(\.currentState)
        if states.contains(.ready) { return (true, "ready") }
        let loading = models.filter { $0.value.currentState == .loading }.keys.sorted()
        if !loading.isEmpty { return (false, "no model is ready yet; loading: \(loading.joined(separator: ", "))") }
        return (false, "no model can serve: every one of the \(states.count) model folder(s) failed; see the index for each one's error")
    }

    /// `readiness.ready`.
    public var isReady: Bool { readiness.ready }

    /// The version serving `name`, if any.
    public func serving(_ name: String) -> ServingVersion? { models[name]?.serving }

    private mutating func indexServing() {
        servingVersions = models.values.compactMap(\.serving).sorted { $0.name < $1.name }
        notServing = models.filter { $0.value.serving == nil }.map { (name: $0.key, status: $0.value) }.sorted { $0.name < $1.name }
    }
}
