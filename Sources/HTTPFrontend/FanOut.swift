import ServingCore
import Synchronization

/// Scores one row with several models at once, for `/all`.
enum FanOut {
    /// The predictions in the order of `runners`, all requested before any is awaited.
    ///
    /// Worker processes are sent every row first and the request suspends once until the last answer; models
    /// in the server's process run in a task group, in parallel on the cooperative pool.
    static func predict(_ variables: [UInt8], with runners: [any ModelRunner]) async -> [Prediction] {
        let callbacks = runners.compactMap { $0 as? any CallbackModelRunner }
        if !runners.isEmpty, callbacks.count == runners.count {
            return await withUnsafeContinuation { continuation in
                let answers = Answers(count: callbacks.count, continuation: continuation)
                for (index, runner) in callbacks.enumerated() {
                    runner.predict(variables: variables) { answers.deliver($0, at: index) }
                }
            }
        }
        return await withTaskGroup(of: (Int, Prediction).self) { group in
            for (index, runner) in runners.enumerated() {
                group.addTask { (index, await runner.predict(variables: variables)) }
            }
            var predictions = [Prediction](repeating: .failure(PredictionFailure(.unavailable, "no answer")), count: runners.count)
            for await (index, prediction) in group { predictions[index] = prediction }
            return predictions
        }
    }

    /// Collects the answers of callback runners and resumes the request with the last one.
    final class Answers: Sendable {
        struct State {
            var predictions: [Prediction]
            var answered: [Bool]
            var remaining: Int
            var continuation: UnsafeContinuation<[Prediction], Never>?
        }

        let state: Mutex<State>

        init(count: Int, continuation: UnsafeContinuation<[Prediction], Never>) {
            state = Mutex(State(
                predictions: Array(repeating: .failure(PredictionFailure(.unavailable, "no answer")), count: count),
                answered: Array(repeating: false, count: count), remaining: count, continuation: continuation
            ))
        }

        func deliver(_ prediction: Prediction, at index: Int) {
            let finished = state.withLock { state -> (UnsafeContinuation<[Prediction], Never>, [Prediction])? in
                guard !state.answered[index] else { return nil }
                state.answered[index] = true
                state.predictions[index] = prediction
                state.remaining -= 1
                guard state.remaining == 0, let continuation = state.continuation.take() else { return nil }
                return (continuation, state.predictions)
            }
            if let (continuation, predictions) = finished { continuation.resume(returning: predictions) }
        }
    }
}
