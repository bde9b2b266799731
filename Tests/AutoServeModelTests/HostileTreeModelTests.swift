import Foundation
import Testing

@testable import AutoServeModel

/// Model files made to crash, hang or exhaust a reader (`Tests/Fixtures/hostile`, written by `make_hostile.py`): each
/// is refused with a message naming the field, and quickly, because every count is checked before it allocates.
struct HostileTreeModelTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/hostile")
        .path

    /// The hostile tree folders and the words their reason must hold.
    static let cases: [(name: String, reason: String)] = {
        let data = FileManager.default.contents(atPath: "\(folder)/reasons.json") ?? Data()
        let reasons = (try? JSONDecoder().decode([String: String?].self, from: data)) ?? [:]
        return reasons.compactMap { name, reason in reason.map { (name, $0) } }.filter { !$0.name.hasPrefix("Swift") }.sorted { $0.name < $1.name }
    }()

    @Test func everyReproductionIsHere() {
        #expect(Self.cases.count == 15)
    }

    @Test(arguments: cases.map(\.name))
    func isRefusedWithItsReason(_ name: String) throws {
        let reason = Self.cases.first { $0.name == name }!.reason
        let lightgbm = FileManager.default.fileExists(atPath: "\(Self.folder)/\(name)/model.txt")
        let file = "\(Self.folder)/\(name)/\(lightgbm ? "model.txt" : "model.json")"
        let error = #expect(throws: TreeModelError.self) { try TreeModel(kind: lightgbm ? .lightgbm : .xgboost, file: file) }
        #expect(error?.message.contains(reason) == true, "\(name): \(error?.message ?? "no error")")
    }

    /// The files the hostile ones are made from load, so that each refusal is the change it makes.
    @Test func theValidBasesLoad() throws {
        let fuzzCorpus = URL(fileURLWithPath: Self.folder).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fuzz/corpus").path
        let lightgbm = try TreeModel(kind: .lightgbm, file: "\(fuzzCorpus)/lightgbm/valid")
        #expect(lightgbm.raw([0.25, 1]) == [0.1])
        #expect(lightgbm.raw([0.75, .nan]) == [0.2])
        let xgboost = try TreeModel(kind: .xgboost, file: "\(fuzzCorpus)/xgboost/valid")
        #expect(try xgboost.predict(["colour": "blue"])["probability"] != xgboost.predict(["colour": "red"])["probability"])
    }

    /// A count a file declares is checked before anything is reserved for it: a line of `num_leaves=131072` with
    /// three values is refused for its values, not after reserving 131,072 of them, and a limit names itself.
    @Test func declaredCountsAreBoundedByTheLimits() throws {
        let corpus = URL(fileURLWithPath: Self.folder).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fuzz/corpus").path
        let valid = try String(contentsOfFile: "\(corpus)/lightgbm/valid", encoding: .utf8)
        let file = NSTemporaryDirectory() + "hostile-\(UUID().uuidString).txt"
        defer { try? FileManager.default.removeItem(atPath: file) }
        for (line, replacement, reason) in [
            ("num_leaves=3", "num_leaves=131072", "leaf_value has 3 values; the tree needs 131072"),
            ("num_leaves=3", "num_leaves=131073", "over the limit of 131072 leaves per tree"),
            ("num_class=1", "num_class=10001", "over the limit of 10000 classes"),
            ("max_feature_idx=1", "max_feature_idx=100000", "over the limit of 100000 features"),
            ("num_cat=1", "num_cat=-1", "num_cat=-1 is not a whole number"),
            ("leaf_value=0.1 0.2 0.3", "leaf_value=0.1 nan 0.3", "leaf_value holds nan"),
            ("threshold=0.5 0", "threshold=nan 0", "threshold holds nan"),
            ("threshold=0.5 0", "threshold=0.5 0.5", "category set 0.5"),
            ("objective=binary sigmoid:1", "objective=binary sigmoid:0", "sigmoid must be a positive number"),
        ] {
            try valid.replacingOccurrences(of: line, with: replacement).write(toFile: file, atomically: true, encoding: .utf8)
            let error = #expect(throws: TreeModelError.self) { try TreeModel(kind: .lightgbm, file: file) }
            #expect(error?.message.contains(reason) == true, "\(replacement): \(error?.message ?? "no error")")
        }
    }
}
