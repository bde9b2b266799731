/// A loaded model version that scores rows: what the manager hands the HTTP layer for one request.
///
/// In-process plugins and worker processes both implement it, so the HTTP layer never knows how a model is
/// isolated. `predict` takes the UTF-8 bytes of the `variables` object and never throws: every failure is a
/// `Prediction.failure` that maps to one HTTP status. It answers through a callback, without a task of its
/// own (a worker process is answered on an event loop, an in-process model on a thread of the model pool), so
/// a scoring request waits for it without a task, and `/all` sends the row to every model at once.
public protocol ModelRunner: Sendable {
    /// Sends the row; `completion` runs exactly once, on any thread, with the answer: with `explain`, the output
    /// holds the explanation of the score too (docs/explanations.md).
    func predict(variables: [UInt8], explain: Bool, completion: @escaping @Sendable (Prediction) -> Void)

    /// Why this loaded version cannot serve any more (its workers fail on every start), or `nil` while it can.
    var brokenReason: String? { get }

    /// Answers every request still waiting with `failure` now (the server's stop ran out of time).
    func abandonPending(_ failure: PredictionFailure)

    /// Lets the version go: the manager calls it once, after the version's last request (its workers stop).
    func unload()

    /// How the model's code is confined, as the index shows it (docs/operations.md, "The sandbox"): "strict (landlock 7,
    /// limits, seccomp)", "off", "none (in-process)"; `nil` when the runner cannot tell.
    var sandbox: String? { get }
}

extension ModelRunner {
    public var brokenReason: String? { nil }

    public var sandbox: String? { nil }

    /// Nothing to abandon by default: an in-process call cannot be interrupted.
    public func abandonPending(_ failure: PredictionFailure) {}

    /// Nothing to let go by default.
    public func unload() {}
}

extension ModelRunner {
    /// Scores the row without an explanation.
    public func predict(variables: [UInt8], completion: @escaping @Sendable (Prediction) -> Void) {
        predict(variables: variables, explain: false, completion: completion)
    }

    /// The answer, for callers in a task (the examples check, tests).
    public func predict(variables: [UInt8], explain: Bool = false) async -> Prediction {
        await withUnsafeContinuation { continuation in
            predict(variables: variables, explain: explain) { continuation.resume(returning: $0) }
        }
    }
}

/// The result of scoring one row.
public enum Prediction: Sendable {
    /// The bytes of the output JSON object.
    case output([UInt8])
    case failure(PredictionFailure)
}

/// Why a model did not answer, and the HTTP status that says so.
public struct PredictionFailure: Error, Sendable, Hashable {
    public enum Kind: Sendable, Hashable, CaseIterable {
        /// The variables did not decode into the model's type (400).
        case invalidVariables
        /// The model threw `ModelError.invalidInput` (422).
        case invalidInput
        /// The model threw another error or returned an unusable output (500).
        case modelError
        /// The model cannot answer now: crashed, restarting, draining (503).
        case unavailable
        /// The model took longer than its timeout (504).
        case timeout
        /// The model's worker is too far behind to queue another row (503).
        case overloaded
        /// The model cannot explain its scores (400).
        case explainUnsupported
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var status: Int {
        switch kind {
        case .invalidVariables, .explainUnsupported: 400
        case .invalidInput: 422
        case .modelError: 500
        case .unavailable, .overloaded: 503
        case .timeout: 504
        }
    }

    public var code: String {
        switch kind {
        case .invalidVariables: "invalid_variables"
        case .invalidInput: "invalid_input"
        case .modelError: "model_error"
        case .unavailable: "model_unavailable"
        case .timeout: "model_timeout"
        case .overloaded: "model_overloaded"
        case .explainUnsupported: "explain_unsupported"
        }
    }
}

/// What a runner that supervises worker processes tells the index.
public protocol WorkerReporting: Sendable {
    func workerReport() -> WorkerReport
}

/// The worker processes of one version: their pids, restarts and last crash.
public struct WorkerReport: Sendable {
    public var pids: [Int32]
    public var restarts: Int
    public var lastCrash: String?

    public init(pids: [Int32], restarts: Int, lastCrash: String?) {
        self.pids = pids
        self.restarts = restarts
        self.lastCrash = lastCrash
    }
}
