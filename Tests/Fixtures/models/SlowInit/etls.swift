import AutoServeModel
import Foundation

/// Takes the seconds written in its folder's `delay.txt` (20 without one) in `init(path:)`, as a model loading large
/// weights would; `until /absolute/file` in `delay.txt` holds `init(path:)` until that file exists (at most 280 s), so
/// a test decides when the load ends.
struct SlowInit {
    let delay: Double

    init(path: String) {
        let text = ((try? String(contentsOfFile: path + "/delay.txt", encoding: .utf8)) ?? "20").trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("until /") {
            let file = String(text.dropFirst("until ".count))
            let start = Date()
            while !FileManager.default.fileExists(atPath: file), Date().timeIntervalSince(start) < 280 {
                Thread.sleep(forTimeInterval: 0.05)
            }
            delay = -1
        } else {
            delay = Double(text) ?? 20
            Thread.sleep(forTimeInterval: delay)
        }
    }

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        ["ok": true, "delay": .number(delay)]
    }
}
