import AutoServeModel
import Synchronization

/// How many instances of this model this process has created.
let instancesCreated = Atomic<Int>(0)

/// Answers how many times its initializer ran: once per loaded version, never per request.
final class InitCounter: Sendable {
    init(path: String) {
        instancesCreated.add(1, ordering: .relaxed)
    }

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        ["instances": .number(Double(instancesCreated.load(ordering: .relaxed)))]
    }
}
