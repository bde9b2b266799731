import AutoServeModel
import Foundation

/// Says a row arrived (a file at `marker`), then takes `seconds` to answer it: a test knows the server holds the row.
struct Slow {
    init(path: String) {}

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        if let marker = variables["marker"]?.string { _ = FileManager.default.createFile(atPath: marker, contents: nil) }
        Thread.sleep(forTimeInterval: variables["seconds"]?.double ?? 1)
        return ["slept": true]
    }
}
