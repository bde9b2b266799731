import ServingCore
import Synchronization

/// Hands a row to models and collects their answers through callbacks, without a task per model.
enum FanOut {
    /// One model's answer: through its callback (worker processes, in-process models), else from a task.
    static func predict(_ variables: [UInt8], with runner: any ModelRunner, completion: @escaping @Sendable (Prediction) -> Void) {
        if let runner = runner as? any CallbackModelRunner {
            runner.predict(variables: variables, completion: completion)
        } else {
            Task { completion(await runner.predict(variables: variables)) }
        }
    }

    /// Every model's answer, in the order of `runners`, once the last one is in: the row goes to every model
    /// before any answers, so they run in parallel (worker processes, the model pool's threads).
    static func predict(_ variables: [UInt8], with runners: [any ModelRunner], completion: @escaping @Sendable ([Prediction]) -> Void) {
        guard !runners.isEmpty else { return completion([]) }
        let answers = Answers(count: runners.count, completion: completion)
        for (index, runner) in runners.enumerated() {
            predict(variables, with: runner) { answers.deliver($0, at: index) }
        }
    }

    /// Collects the answers and passes them on with the last one.
    final class Answers: Sendable {
        struct State {
            var predictions: [Prediction]
            var answered: [Bool]
            var remaining: Int
        }

        let state: Mutex<State>
        let completion: @Sendable ([Prediction]) -> Void

        init(count: Int, completion: @escaping @Sendable ([Prediction]) -> Void) {
            state = Mutex(State(
                predictions: Array(repeating: .failure(PredictionFailure(.unavailable, "no answer")), count: count),
                answered: Array(repeating: false, count: count), remaining: count
            ))
            self.completion = completion
        }

        func deliver(_ prediction: Prediction, at index: Int) {
            let finished = state.withLock { state -> [Prediction]? in
                guard !state.answered[index] else { return nil }
                state.answered[index] = true
                state.predictions[index] = prediction
                state.remaining -= 1
                return state.remaining == 0 ? state.predictions : nil
            }
            if let finished { completion(finished) }
        }
    }
}
