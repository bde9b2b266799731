// The tree evaluator's own time per row, without HTTP: compiled with the SDK's sources by bench/trees.py
// (swiftc -O), as a plugin is. Usage: trees-bench lightgbm|xgboost MODEL_FILE ROWS.jsonl ROUNDS
// Prints one line of JSON: the load time and the median and mean seconds of TreeModel.predict on one row.
import Foundation

let arguments = CommandLine.arguments
let kind = TreeModel.Kind(rawValue: arguments[1])!
let clock = ContinuousClock()
let loadStart = clock.now
let model = try TreeModel(kind: kind, file: arguments[2], output: .probability)
let load = clock.now - loadStart
let rows = try String(contentsOfFile: arguments[3], encoding: .utf8).split(separator: "\n").map {
    try JSONDecoder().decode([String: JSON].self, from: Data($0.utf8))
}
let rounds = Int(arguments[4])!
var times: [Double] = []
var sink = 0.0
for _ in 0..<rounds {
    for row in rows {
        let start = clock.now
        let answer = try? model.predict(row)
        let elapsed = clock.now - start
        times.append(Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds))
        sink += answer?["probability"]?.double ?? 0
    }
}
times.sort()
let mean = times.reduce(0, +) / Double(times.count)
let seconds = Double(load.components.attoseconds) / 1e18 + Double(load.components.seconds)
print("{\"load_s\": \(seconds), \"median_s\": \(times[times.count / 2]), \"mean_s\": \(mean), \"rows\": \(times.count), \"sink\": \(sink)}")
