import ModelManager
import ServingCore
import Synchronization

/// Hands a row to every model of `/all` and collects their answers through callbacks, without a task per
/// model: the row goes to every model before any answers, so they run in parallel (worker processes, the
/// model pool's threads).
enum FanOut {
    /// Every version's answer, in the order of `versions`, once the last one is in.
    static func predict(
        _ variables: [UInt8], explain: Bool = false, with versions: [ServingVersion], completion: @escaping @Sendable ([Prediction]) -> Void
    ) {
        guard !versions.isEmpty else { return completion([]) }
        let answers = Answers(count: versions.count, completion: completion)
        for index in versions.indices {
            versions[index].predict(variables: variables, explain: explain) { answers.deliver($0, at: index) }
        }
    }

    /// Collects the answers and passes them on with the last one.
    ///
    /// Each model answers exactly once (the runners' contract), each into its own slot; the countdown
    /// publishes the slots to whoever delivers last. No lock: answers arrive on several threads at once.
    /// `@unchecked Sendable`: each slot is written by one answer only, and read after the countdown reached 0.
    final class Answers: @unchecked Sendable {
        private let slots: UnsafeMutableBufferPointer<Prediction?>
        private let remaining: Atomic<Int>
        private let completion: @Sendable ([Prediction]) -> Void

        init(count: Int, completion: @escaping @Sendable ([Prediction]) -> Void) {
            slots = .allocate(capacity: count)
            slots.initialize(repeating: nil)
            remaining = Atomic(count)
            self.completion = completion
        }

        deinit {
            _ = slots.deinitialize()
            slots.deallocate()
        }

        func deliver(_ prediction: Prediction, at index: Int) {
            slots[index] = prediction
            guard remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 else { return }
            completion(slots.map { $0 ?? .failure(PredictionFailure(.unavailable, "no answer")) })
        }
    }
}
