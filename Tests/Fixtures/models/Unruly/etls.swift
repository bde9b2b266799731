import AutoServeModel
import Foundation

/// Misbehaves on request: traps, loops forever, sleeps or eats memory; otherwise answers `{"ok": true}`.
struct Unruly {
    init(path: String) {}

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        switch variables["mode"]?.string {
        case "crash":
            let missing: Int? = nil
            return ["value": .number(Double(missing!))]
        case "loop":
            var spins = 0.0
            while Date().timeIntervalSince1970 > 0 { spins += 1 }
            return ["spins": .number(spins)]
        case "sleep":
            Thread.sleep(forTimeInterval: 1.5)
            return ["slept": true]
        case "hog":
            let block = [UInt8](repeating: 7, count: 400 << 20)
            Thread.sleep(forTimeInterval: 2)
            return ["bytes": .number(Double(block.count))]
        default:
            return ["ok": true]
        }
    }
}
