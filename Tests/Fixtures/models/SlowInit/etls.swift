import AutoServeModel
import Foundation

/// Takes the seconds written in its folder's `delay.txt` (20 without one) in `init(path:)`, as a model loading large
/// weights would.
struct SlowInit {
    let delay: Double

    init(path: String) {
        let text = (try? String(contentsOfFile: path + "/delay.txt", encoding: .utf8)) ?? "20"
        delay = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 20
        Thread.sleep(forTimeInterval: delay)
    }

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        ["ok": true, "delay": .number(delay)]
    }
}
