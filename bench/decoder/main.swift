// The SDK's variables decoder against Foundation's JSONDecoder on the Iris row, in one process: the same
// bytes decoded into the same struct 200,000 times each, alternating, best of 5 rounds. bench/run.sh builds
// it against the SDK compiled as its own library, as plugins use it (-enable-testing reaches the decoder).
// Prints: JSONDecoder µs per row, the SDK's µs per row, the ratio, and a checksum.
import Foundation
@testable import AutoServeModel

struct IrisVariables: Decodable {
    var sepal_length: Double
    var sepal_width: Double
    var petal_length: Double
    var petal_width: Double
}

let row = Array(#"{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}"#.utf8)
let iterations = 200_000
var checksum = 0.0

func foundation() -> Duration {
    ContinuousClock().measure {
        let decoder = JSONDecoder()
        let data = Data(row)
        for _ in 0..<iterations { checksum += (try! decoder.decode(IrisVariables.self, from: data)).petal_width }
    }
}

func shortcut() -> Duration {
    ContinuousClock().measure {
        row.withUnsafeBufferPointer { bytes in
            for _ in 0..<iterations { checksum += VariablesDecoder.decode(IrisVariables.self, from: bytes)!.petal_width }
        }
    }
}

var best = (foundation: Duration.seconds(1_000), shortcut: Duration.seconds(1_000))
for _ in 0..<5 {
    best.foundation = min(best.foundation, foundation())
    best.shortcut = min(best.shortcut, shortcut())
}
func microseconds(_ duration: Duration) -> Double {
    Double(duration.components.attoseconds) / 1e12 / Double(iterations) + Double(duration.components.seconds) * 1e6 / Double(iterations)
}
let foundationCost = microseconds(best.foundation)
let shortcutCost = microseconds(best.shortcut)
print(String(format: "%.2f\t%.2f\t%.1f\t%.0f", foundationCost, shortcutCost, foundationCost / shortcutCost, checksum.truncatingRemainder(dividingBy: 7)))
