import AutoServeModel
import Foundation

/// Says a row arrived (a file at `marker`), then answers it once a file exists at `release` (at most `seconds`
/// later), or after `seconds` without one: a test knows the server holds the row, and says when it may end.
struct Slow {
    init(path: String) {}

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        if let marker = variables["marker"]?.string { _ = FileManager.default.createFile(atPath: marker, contents: nil) }
        let end = Date(timeIntervalSinceNow: variables["seconds"]?.double ?? 1)
        let release = variables["release"]?.string
        while Date() < end {
            if let release, FileManager.default.fileExists(atPath: release) { break }
            Thread.sleep(forTimeInterval: release == nil ? end.timeIntervalSinceNow : 0.01)
        }
        return ["slept": true]
    }
}
