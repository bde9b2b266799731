import AutoServeModel
import Foundation

/// Prints as models do: a line to standard output, a line to standard error, a flood, or last words before a trap.
struct Printer {
    init(path: String) {}

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        switch variables["mode"]?.string {
        case "flood":
            for index in 0..<1000 { print("flood line \(index)") }
        case "crash":
            print("last words before the trap")
            let missing: Int? = nil
            return ["never": .number(Double(missing!))]
        default:
            print("hello from the model")
            FileHandle.standardError.write(Data("a warning on stderr\n".utf8))
        }
        return ["ok": true]
    }
}
