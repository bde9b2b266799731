import AutoServeModel
import Foundation

struct ThrowingInit {
    let weights: Data

    init(path: String) throws {
        weights = try Data(contentsOf: URL(fileURLWithPath: path + "/missing-weights.bin"))
    }

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] { [:] }
}
