import AutoServeModel
import Foundation

/// Starts once; every later start of the same version traps, so once its worker dies it can never come back.
struct CrashLoop {
    init(path: String) {
        let marker = NSTemporaryDirectory() + "autoserve-crashloop" + path.replacingOccurrences(of: "/", with: "_")
        if FileManager.default.fileExists(atPath: marker) {
            let missing: Int? = nil
            _ = missing!
        }
        _ = FileManager.default.createFile(atPath: marker, contents: nil)
    }

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        if variables["mode"]?.string == "crash" {
            let missing: Int? = nil
            _ = missing!
        }
        return ["ok": true]
    }
}
