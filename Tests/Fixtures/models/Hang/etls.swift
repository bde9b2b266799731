import AutoServeModel
import Foundation

/// Never answers a row whose `mode` is `hang` (it blocks; a spinning loop would burn a core for good).
struct Hang {
    init(path: String) {}

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        if variables["mode"]?.string == "hang" { Thread.sleep(forTimeInterval: 3600) }
        return ["ok": true]
    }
}
