import AutoServeModel
import Foundation

/// Prints as models do: a line to standard output, a line to standard error, a flood, a loop for some seconds, or last
/// words before a trap.
struct Printer {
    init(path: String) {}

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        switch variables["mode"]?.string {
        case "flood":
            for index in 0..<1000 { print("flood line \(index)") }
        case "loop":
            // Prints for `seconds`, as a chatty model would: some thousands of lines a second, far past the server's
            // 100 logged lines a second.
            let end = Date().addingTimeInterval(variables["seconds"]?.double ?? 15)
            var index = 0
            while Date() < end {
                print("loop line \(index)")
                index += 1
                if index % 10 == 0 { Thread.sleep(forTimeInterval: 0.001) }
            }
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
