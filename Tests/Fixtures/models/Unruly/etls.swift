import AutoServeModel
import Foundation

/// Misbehaves on request: traps, loops forever, sleeps or eats memory; otherwise answers `{"ok": true}`.
/// A sleeping row says it arrived (a file at `marker`) and ends once a file exists at `release` (or after 60 s),
/// else after 1.5 s.
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
            if let marker = variables["marker"]?.string { _ = FileManager.default.createFile(atPath: marker, contents: nil) }
            let release = variables["release"]?.string
            let end = Date(timeIntervalSinceNow: release == nil ? 1.5 : 60)
            while Date() < end, !(release.map(FileManager.default.fileExists) ?? false) {
                Thread.sleep(forTimeInterval: release == nil ? end.timeIntervalSinceNow : 0.01)
            }
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
