import Foundation
import Logging
import PluginRuntime
public import ServingCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A model instance living in the server's own process (`MODEL_ISOLATION=inprocess`).
///
/// The instance is created once per loaded version by the model's `init(path:)`, on a thread of its own (never
/// a thread that serves requests); calls run on the `ModelCallPool`'s threads, never on an event loop.
/// In-process, a call cannot be stopped: one that passes the model's timeout is answered 504 at its deadline and
/// its thread is written off (replaced in the pool, logged, counted); after `hungCallLimit` of them the version
/// is `failed` (use `MODEL_ISOLATION=process`, which kills and restarts a hung worker). Releasing the last
/// reference destroys the instance; the library stays.
public final class InProcessModel: ModelRunner, DeadlineWatched, Sendable {
    /// A plugin in the server's own process cannot be confined (docs/operations.md, "The sandbox").
    public var sandbox: String? { "none (in-process)" }

    /// Hung calls after which the version stops serving: each holds a thread for good.
    static let hungCallLimit = 3

    let instance: PluginInstance
    let name: String
    let timeout: Duration
    let logger: Logger?
    let metrics: Metrics?
    private let hungCalls = Atomic<Int>(0)
    /// The calls not answered yet, so that a stop past `SHUTDOWN_TIMEOUT` can answer them, with their deadline once
    /// a thread of the pool runs them (a call that waits for a thread is not late).
    private let unanswered = Mutex<[Int: (answer: AnswerOnce, deadline: ContinuousClock.Instant?)]>([:])
    private let calls = Atomic<Int>(0)

    init(_ instance: PluginInstance, name: String, timeout: Duration, logger: Logger? = nil, metrics: Metrics? = nil) {
        self.instance = instance
        self.name = name
        self.timeout = timeout
        self.logger = logger
        self.metrics = metrics
        DeadlineWatchdog.shared.watch(self)
    }

    /// Stops watching its deadlines; the instance itself is destroyed when the last reference goes, which a call
    /// past its deadline still running on a written-off thread holds (an in-process call cannot be stopped).
    public func unload() {
        DeadlineWatchdog.shared.forget(self)
    }

    deinit {
        DeadlineWatchdog.shared.forget(self)
        instance.destroy()
    }

    public func predict(variables: [UInt8], explain: Bool, completion: @escaping @Sendable (Prediction) -> Void) {
        let key = calls.add(1, ordering: .relaxed).newValue
        let answer = AnswerOnce { [weak self] prediction in
            _ = self?.unanswered.withLock { $0.removeValue(forKey: key) }
            completion(prediction)
        }
        unanswered.withLock { $0[key] = (answer, nil) }
        ModelCallPool.shared.run { [self] in
            unanswered.withLock { $0[key]?.deadline = .now + timeout }
            // A call answered after its deadline ran on a thread that was replaced: that thread ends.
            return answer.give(predictNow(variables: variables, explain: explain))
        }
    }

    /// Answers 504 to the calls past their deadline (the `DeadlineWatchdog` looks every 10 ms) and writes their
    /// threads off.
    func expireOverdue(at now: ContinuousClock.Instant) {
        let overdue = unanswered.withLock { unanswered in unanswered.values.filter { $0.deadline.map { $0 <= now } ?? false }.map(\.answer) }
        for answer in overdue {
            guard
                answer.give(
                    .failure(
                        PredictionFailure(
                            .timeout,
                            "\(name) took longer than its timeout of \(timeout.milliseconds) ms; in-process the call cannot be stopped "
                                + "and its thread is written off (MODEL_ISOLATION=process restarts a hung model instead)"
                        )))
            else { continue }
            let hung = hungCalls.add(1, ordering: .relaxed).newValue
            ModelCallPool.shared.replaceHungThread()
            metrics?.increment("autoserve_inprocess_hung_calls_total", labels: [name])
            logger?.warning(
                "in-process call hung past its timeout; its thread is written off",
                metadata: [
                    "model": "\(name)", "hung_calls": "\(hung)", "limit": "\(Self.hungCallLimit)",
                ])
        }
    }

    public func abandonPending(_ failure: PredictionFailure) {
        for entry in unanswered.withLock({ Array($0.values) }) { _ = entry.answer.give(.failure(failure)) }
    }

    /// Too many calls hung: their threads are gone for good, and more would follow.
    public var brokenReason: String? {
        let hung = hungCalls.load(ordering: .relaxed)
        guard hung >= Self.hungCallLimit else { return nil }
        return "\(hung) calls hung past the timeout and hold threads for good; fix the model, or serve it with MODEL_ISOLATION=process"
    }

    /// The call itself, on the caller's thread.
    public func predictNow(variables: [UInt8], explain: Bool = false) -> Prediction {
        let (status, bytes) = instance.call(variables: variables, explain: explain)
        return Prediction(status: status, bytes: bytes)
    }
}

extension Prediction {
    /// A plugin's answer (`PluginStatus`), from an in-process call or a worker's frame.
    init(status: Int32, bytes: [UInt8]) {
        let message = { String(decoding: bytes, as: UTF8.self) }
        switch PluginStatus(rawValue: status) {
        case .ok: self = .output(bytes)
        case .invalidVariables: self = .failure(PredictionFailure(.invalidVariables, message()))
        case .invalidInput: self = .failure(PredictionFailure(.invalidInput, message()))
        case .modelError: self = .failure(PredictionFailure(.modelError, message()))
        case .explainUnsupported: self = .failure(PredictionFailure(.explainUnsupported, message()))
        case nil: self = .failure(PredictionFailure(.modelError, "the plugin answered with unknown status \(status)"))
        }
    }
}

/// A completion that runs once, whoever gives the answer first (the call or its deadline).
final class AnswerOnce: Sendable {
    private let completion: Mutex<(@Sendable (Prediction) -> Void)?>

    init(_ completion: @escaping @Sendable (Prediction) -> Void) {
        self.completion = Mutex(completion)
    }

    /// Answers; `false` when the answer was already given.
    func give(_ prediction: Prediction) -> Bool {
        guard let completion = completion.withLock({ $0.take() }) else { return false }
        completion(prediction)
        return true
    }
}
