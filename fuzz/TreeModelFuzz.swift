// libFuzzer target: the readers of LightGBM text models and XGBoost JSON models (`TreeModel`, compiled in with this
// file by fuzz/run.sh; TREE_KIND picks the reader at build time with -D LIGHTGBM or -D XGBOOST).
//
// A model file comes from the models repository, a stranger's input. The oracles:
// - reading any bytes ends, within the fuzzer's -timeout and -rss_limit_mb, in a model or a `TreeModelError` (the
//   message that names the field and the limit), never another error, a trap or an allocation the file does not back;
// - a model that loads scores rows of missing values, zeros and values from the input without trapping, and gives one
//   raw score per class (one for a binary or a regression model);
// - a model that can explain (its counts are usable) explains those rows without trapping: per class, one contribution
//   per feature and the base, which add up to the raw score wherever both are finite.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTreeModel(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let data = Data(UnsafeBufferPointer(start: start, count: count))
    #if LIGHTGBM
        let kind = TreeModel.Kind.lightgbm
    #else
        let kind = TreeModel.Kind.xgboost
    #endif
    let model: TreeModel
    do {
        model = try TreeModel(kind: kind, data: data, file: "fuzz")
    } catch is TreeModelError {
        return 0
    } catch {
        fail("the reader threw \(type(of: error)), not a TreeModelError: \(error)", data)
    }
    let width = model.features.count
    let classes: Int
    switch model.task {
    case .regression, .binary: classes = 1
    case .multiclass(let count, _): classes = count
    }
    let fromInput = (0..<width).map { Double(data[data.startIndex + $0 % max(data.count, 1)]) - 100 }
    for row in [[Double](repeating: .nan, count: width), [Double](repeating: 0, count: width), fromInput] {
        let raw = model.raw(row)
        guard raw.count == classes else { fail("\(raw.count) raw scores for \(classes) classes", data) }
        _ = model.value(row)
        guard model.explanationRefusal == nil else { continue }
        let contributions = model.contributions(row)
        guard contributions.count == classes, contributions.allSatisfy({ $0.count == width + 1 }) else {
            fail("contributions of \(contributions.map(\.count)) values for \(classes) classes of \(width) features", data)
        }
        for (values, score) in zip(contributions, raw) {
            let sum = values.reduce(0, +)
            guard sum.isFinite, score.isFinite, values.allSatisfy({ $0.isFinite }) else { continue }
            let scale = values.reduce(abs(score)) { $0 + abs($1) }
            // Float models (XGBoost) round at each of thousands of additions.
            guard abs(sum - score) <= 1e-3 * max(1, scale) else { fail("contributions add up to \(sum), the raw score is \(score)", data) }
        }
    }
    _ = try? model.predict(["f0": 1, "Column_0": .null])
    _ = model.variablesSchema
    _ = model.outputSchema
    return 0
}

func fail(_ message: String, _ data: Data) -> Never {
    FileHandle.standardError.write(Data("FUZZ FAILURE: \(message)\n".utf8))
    abort()
}
