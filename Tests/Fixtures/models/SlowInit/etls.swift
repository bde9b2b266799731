import AutoServeModel
import Foundation

/// Takes 20 s in `init(path:)`, as a model loading large weights would.
struct SlowInit {
    init(path: String) {
        Thread.sleep(forTimeInterval: 20)
    }

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        ["ok": true]
    }
}
