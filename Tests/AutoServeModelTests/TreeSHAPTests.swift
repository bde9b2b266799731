import Foundation
import Testing

@testable import AutoServeModel

/// The contributions of the tree models against the libraries' own TreeSHAP (`predict(pred_contrib=True)`,
/// `predict(pred_contribs=True)`), committed per fixture as `contributions.jsonl` by
/// `Tests/Fixtures/trees/make_fixtures.py --contributions`: every row of every fixture, in-process. The server tests
/// ask the same through the real server.
struct TreeSHAPTests {
    /// Within 1e-9: absolute, or relative above 1 (docs/explanations.md, "Tree models").
    static func equal(_ actual: Double, _ expected: Double) -> Bool {
        abs(actual - expected) <= 1e-9 * max(1, abs(expected))
    }

    static func expected(_ name: String) throws -> [[String: JSON]] {
        try TreeModelTests.Fixture.lines("\(TreeModelTests.fixtures)/\(name)/contributions.jsonl")
    }

    @Test(arguments: TreeModelTests.names)
    func contributionsEqualTheLibrarys(_ name: String) throws {
        let fixture = try TreeModelTests.Fixture(name)
        let expected = try Self.expected(name)
        #expect(fixture.model.explanationRefusal == nil)
        #expect(expected.count == fixture.rows.count)
        var compared = 0
        var largest = 0.0
        for (number, (row, wanted)) in zip(fixture.rows, expected).enumerated() {
            guard let classes = wanted["contributions"]?.array else { continue }
            let actual = fixture.model.contributions(try fixture.model.values(of: row))
            let lists = classes.map { $0.array!.map { $0.double! } }
            #expect(actual.count == lists.count, "\(name) row \(number + 1): \(actual.count) classes, wanted \(lists.count)")
            for (mine, theirs) in zip(actual, lists) {
                #expect(mine.count == theirs.count)
                for (a, b) in zip(mine, theirs) { largest = max(largest, abs(a - b) / max(1, abs(b))) }
                #expect(zip(mine, theirs).allSatisfy(Self.equal), "\(name) row \(number + 1): \(mine), wanted \(theirs)")
            }
            compared += 1
        }
        #expect(compared >= 900, "\(name): only \(compared) rows compared")
        // Base plus contributions is the raw score (within the rounding of adding them up).
        for row in fixture.rows.prefix(50) {
            guard let features = try? fixture.model.values(of: row) else { continue }
            for (contributions, raw) in zip(fixture.model.contributions(features), fixture.model.raw(features)) {
                #expect(abs(contributions.reduce(0, +) - raw) <= 1e-5 * max(1, abs(raw)))
            }
        }
        print("\(name): \(compared) rows, largest difference \(largest)")
    }
}

extension TreeSHAPTests {
    /// LightGBM's own walk, kept as the reference of the quadrature: bit for bit the library's.
    @Test(arguments: ["lgb_binary", "lgb_multiclass", "lgb_categorical", "lgb_large"])
    func theReferenceWalkIsTheLibrarysToTheBit(_ name: String) throws {
        let fixture = try TreeModelTests.Fixture(name)
        guard case .lightgbm(let forest) = fixture.model.trees else {
            Issue.record("\(name) is not LightGBM")
            return
        }
        // The reference is slow (LightGBM's own time, more in a debug build): fewer rows of the large model.
        for (row, wanted) in zip(fixture.rows, try Self.expected(name)).prefix(name == "lgb_large" ? 10 : 200) {
            let lists = wanted["contributions"]!.array!.map { $0.array!.map { $0.double! } }
            #expect(forest.contributions(try fixture.model.values(of: row), exactly: true) == lists)
        }
    }

    /// A model file whose counts were changed by one row at one split explains differently from the library: the
    /// comparison catches a contribution computed wrongly.
    @Test(arguments: ["lgb_binary", "xgb_binary"])
    func aMutatedModelIsCaught(_ name: String) throws {
        let folder = "\(TreeModelTests.fixtures)/\(name)"
        let fixture = try TreeModelTests.Fixture(name)
        let file = "\(folder)/\(name.hasPrefix("lgb") ? "model.txt" : "model.json")"
        var text = try String(contentsOfFile: file, encoding: .utf8)
        if name.hasPrefix("lgb") {
            // The first tree's second split: its count one higher.
            let line = text.range(of: "internal_count=")!
            let end = text[line.upperBound...].firstIndex(of: "\n")!
            var counts = text[line.upperBound..<end].split(separator: " ").map { Int($0)! }
            counts[1] += 1
            text.replaceSubrange(line.upperBound..<end, with: counts.map(String.init).joined(separator: " "))
        } else {
            let line = text.range(of: "\"sum_hessian\":[")!
            let end = text[line.upperBound...].firstIndex(of: ",")!
            text.replaceSubrange(line.upperBound..<end, with: String(Float(text[line.upperBound..<end])! * 1.01))
        }
        let mutated = try TreeModel(kind: name.hasPrefix("lgb") ? .lightgbm : .xgboost, data: Data(text.utf8), file: file, output: .raw)
        var differing = 0
        for (row, wanted) in zip(fixture.rows, try Self.expected(name)).prefix(200) {
            guard let classes = wanted["contributions"]?.array else { continue }
            let lists = classes.map { $0.array!.map { $0.double! } }
            let actual = mutated.contributions(try mutated.values(of: row))
            if !zip(actual.joined(), lists.joined()).allSatisfy(Self.equal) { differing += 1 }
            // The scores do not change: only the explanation.
            #expect(mutated.raw(try mutated.values(of: row)) == fixture.model.raw(try fixture.model.values(of: row)))
        }
        #expect(differing > 100, "\(name): only \(differing) of 200 rows told apart")
    }

    /// A file without node counts serves and says why it cannot explain.
    @Test func aModelWithoutCountsCannotExplain() throws {
        var text = try String(contentsOfFile: "\(TreeModelTests.fixtures)/lgb_binary/model.txt", encoding: .utf8)
        text = text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("internal_count=") }.joined(separator: "\n")
        let model = try TreeModel(kind: .lightgbm, data: Data(text.utf8), file: "model.txt", output: .raw)
        #expect(model.explanationRefusal?.contains("node counts") == true)
        #expect(model.raw(Array(repeating: 0.5, count: 8)).count == 1)
    }
}
