import AutoServeModel
import Foundation

/// Returns every environment variable its worker process can see, so a test can look for the server's secrets.
struct EnvProbe {
    init(path: String) {}

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        var seen: [String: JSON] = [:]
        for (name, value) in ProcessInfo.processInfo.environment { seen[name] = .string(value) }
        return ["environment": .object(seen)]
    }
}
