import AutoServeModel
import Foundation

enum Level: Int, Decodable { case a = 9223372036854775807 }

struct Model {
    struct Variables: Decodable { var level: Level }
    init(path: String) {}
    func transform_predict(_ variables: Variables) -> [String: JSON] { ["level": .number(Double(variables.level.rawValue))] }
}
