public import DriftReport
public import Foundation
public import ServingCore
public import Synchronization

/// A model's state in the index: `ready` while some version serves, `loading` before its first version is
/// ready, `failed` when no version serves and the last attempt failed.
public enum ModelState: String, Sendable, Codable {
    case loading, ready, failed
}

/// A version that serves requests: the runner and what the index and the response headers show.
///
/// A request holds one of these from start to end, so a swap never changes the version a request runs
/// on; when the last holder lets go of a replaced version, its model instance is released.
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
    public let drift: DriftMonitor?
    /// Its variables' and output's JSON Schemas, and its manifest's first example (README, "OpenAPI").
    public let schemas: ModelSchemas
    public let example: JSONValue?
    /// The rows a batch keeps in flight when it starts: where the last batch's window ended, eight before the first
    /// (README, "HTTP API").
    public let batchWindow = Atomic<Int>(8)

    public init(
        name: ModelName, version: String, runner: any ModelRunner, loadedAt: Date, typeName: String, summary: String?, commit: String?, metrics: Metrics,
        drift: DriftMonitor? = nil, schemas: ModelSchemas = ModelSchemas(), example: JSONValue? = nil
    ) {
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

/// Everything the index knows about one model name.
public struct ModelStatus: Sendable {
    public var folderName: String
    public var state: ModelState
    public var serving: ServingVersion?
    /// The version being built or loaded, if any.
    public var pendingVersion: String?
    public var lastError: FailureReport?

    public init(folderName: String, state: ModelState, serving: ServingVersion? = nil, pendingVersion: String? = nil, lastError: FailureReport? = nil) {
        self.folderName = folderName
        self.state = state
        self.serving = serving
        self.pendingVersion = pendingVersion
        self.lastError = lastError
    }

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
    /// Why the server is not ready before the source was read.
    public var readinessReason = "the first sync has not started"
    public var commit: String?
    public var lastSync: SyncReport?
    public var source: String = ""

    public init() {}

    /// Whether the server should take traffic (`/readyz`), and why, from the models' current states.
    ///
    /// Ready once the source was read and some model serves, or the source holds no model folder at all: a
    /// slow model does not hold up the others, and a server whose every model failed takes no traffic.
    public var readiness: (ready: Bool, reason: String) {
        guard sourceRead else { return (false, readinessReason) }
        guard !models.isEmpty else { return (true, "ready; the source has no model folder") }
        let states = models.values.map(\.currentState)
        if states.contains(.ready) { return (true, "ready") }
        let loading = states.filter { $0 == .loading }.count
        if loading > 0 { return (false, "no model is ready yet; \(loading) model(s) loading") }
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
