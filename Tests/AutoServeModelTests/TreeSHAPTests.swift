import Foundation
import Testing

@testable import AutoServeModel

/// The contributions of the tree models against the libraries' own TreeSHAP (`predict(pred_contrib=True)`,
/// `predict(pred_contribs=True)`), committed per fixture as `contributions.jsonl` by
/// `Tests/Fixtures/trees/make_fixtures.py --contributions`, in-process. The server tests ask every row of six
/// fixtures through the real server, whose plugins are optimized.
///
/// The walks are slow in this debug build (lgb_large's 1,000 rows took 35 s of a core): every row of the small
/// models, an even spread of the large ones, and the work on threads of its own, so that the tests waiting on a
/// server or a process meanwhile are not starved of Swift's few concurrency threads.
struct TreeSHAPTests {
    /// Every `stride`th row: about two seconds of a core per fixture in a debug build.
    static func stride(_ name: String) -> Int {
        ["lgb_large": 10, "xgb_regression": 8, "xgb_multiclass": 4, "xgb_binary": 3][name] ?? 1
    }

    /// Within 1e-9: absolute, or relative above 1 (docs/explanations.md, "Tree models").
    static func equal(_ actual: Double, _ expected: Double) -> Bool {
        abs(actual - expected) <= 1e-9 * max(1, abs(expected))
    }

    static func expected(_ name: String) throws -> [[String: JSON]] {
        try TreeModelTests.Fixture.lines("\(TreeModelTests.fixtures)/\(name)/contributions.jsonl")
    }

    @Test(arguments: TreeModelTests.names)
    func contributionsEqualTheLibrarys(_ name: String) async throws {
        let fixture = try TreeModelTests.Fixture(name)
        let expected = try Self.expected(name)
        #expect(fixture.model.explanationRefusal == nil)
        #expect(expected.count == fixture.rows.count)
        let numbers = Array(Swift.stride(from: 0, to: min(fixture.rows.count, expected.count), by: Self.stride(name)))
        let model = fixture.model
        let rows = numbers.map { fixture.rows[$0] }
        // A row the library refuses (an unseen category of XGBoost's) has no contributions and no values.
        let answers = try await offThread { rows.map { (try? model.values(of: $0)).map(model.contributions) } }
        var compared = 0
        var largest = 0.0
        for (number, answer) in zip(numbers, answers) {
            guard let classes = expected[number]["contributions"]?.array else { continue }
            guard let actual = answer else {
                Issue.record("\(name) row \(number + 1): refused, though the library explains it")
                continue
            }
            let lists = classes.map { $0.array!.map { $0.double! } }
            #expect(actual.count == lists.count, "\(name) row \(number + 1): \(actual.count) classes, wanted \(lists.count)")
            for (mine, theirs) in zip(actual, lists) {
                #expect(mine.count == theirs.count)
                for (a, b) in zip(mine, theirs) { largest = max(largest, abs(a - b) / max(1, abs(b))) }
                #expect(zip(mine, theirs).allSatisfy(Self.equal), "\(name) row \(number + 1): \(mine), wanted \(theirs)")
            }
            compared += 1
        }
        #expect(compared >= 900 / Self.stride(name), "\(name): only \(compared) rows compared")
        // Base plus contributions is the raw score (within the rounding of adding them up).
        for (number, answer) in zip(numbers, answers).prefix(50) {
            guard let contributions = answer, let features = try? model.values(of: fixture.rows[number]) else { continue }
            for (explained, raw) in zip(contributions, model.raw(features)) {
                #expect(abs(explained.reduce(0, +) - raw) <= 1e-5 * max(1, abs(raw)))
            }
        }
        print("\(name): \(compared) rows, largest difference \(largest)")
    }
}

/// Runs CPU-bound work on a thread of its own (see ``TreeSHAPTests``).
func offThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

extension TreeSHAPTests {
    /// LightGBM's own walk, kept as the reference of the quadrature: bit for bit the library's.
    @Test(arguments: ["lgb_binary", "lgb_multiclass", "lgb_categorical", "lgb_large"])
    func theReferenceWalkIsTheLibrarysToTheBit(_ name: String) async throws {
        let fixture = try TreeModelTests.Fixture(name)
        guard case .lightgbm(let forest) = fixture.model.trees else {
            Issue.record("\(name) is not LightGBM")
            return
        }
        // The reference is slow (LightGBM's own time, more in a debug build): fewer rows of the large model.
        let expected = try Self.expected(name).prefix(name == "lgb_large" ? 10 : 200)
        let model = fixture.model
        let rows = Array(fixture.rows.prefix(expected.count))
        let answers = try await offThread { try rows.map { forest.contributions(try model.values(of: $0), exactly: true) } }
        #expect(answers.count == expected.count)
        for (number, (actual, wanted)) in zip(answers, expected).enumerated() {
            let lists = wanted["contributions"]!.array!.map { $0.array!.map { $0.double! } }
            #expect(actual == lists, "\(name) row \(number + 1)")
        }
    }

    /// A model file whose counts were changed by one row at one split explains differently from the library: the
    /// comparison catches a contribution computed wrongly.
    @Test(arguments: ["lgb_binary", "xgb_binary"])
    func aMutatedModelIsCaught(_ name: String) async throws {
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
        let original = fixture.model
        let rows = Array(fixture.rows.prefix(200))
        // Per row: the mutated model's contributions, and whether its score is the original's.
        let answers = try await offThread {
            try rows.map { row in
                let values = try mutated.values(of: row)
                return (mutated.contributions(values), mutated.raw(values) == original.raw(try original.values(of: row)))
            }
        }
        var differing = 0
        for ((actual, sameScore), wanted) in zip(answers, try Self.expected(name)) {
            guard let classes = wanted["contributions"]?.array else { continue }
            let lists = classes.map { $0.array!.map { $0.double! } }
            if !zip(actual.joined(), lists.joined()).allSatisfy(Self.equal) { differing += 1 }
            #expect(sameScore, "the scores do not change: only the explanation")
        }
        #expect(differing > 100, "\(name): only \(differing) of 200 rows told apart")
    }

    /// A large forest's trees are walked in two runs, the second on a helper thread when it is free: rows explained on
    /// many threads at once (the helper busy for most of them) answer what they answer one at a time, to the bit.
    @Test(arguments: ["lgb_large", "xgb_regression"])
    func explanationsOnManyThreadsAtOnceAreTheirOwn(_ name: String) async throws {
        let fixture = try TreeModelTests.Fixture(name)
        let model = fixture.model
        if case .xgboost(let forest) = model.trees { #expect((forest.shap?.leafCount ?? 0) >= ShapHelper.fewestLeaves) }
        if case .lightgbm(let forest) = model.trees { #expect((forest.shap?.leafCount ?? 0) >= ShapHelper.fewestLeaves) }
        let rows = try fixture.rows.prefix(12).map { try model.values(of: $0) }
        let alone = try await offThread { rows.map { model.contributions($0) } }
        let together = try await withThrowingTaskGroup(of: [[[Double]]].self) { group in
            for _ in 0..<4 { group.addTask { try await offThread { rows.map { model.contributions($0) } } } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(together.count == 4)
        for answers in together {
            for (number, (mine, theirs)) in zip(answers, alone).enumerated() {
                #expect(mine.map { $0.map(\.bitPattern) } == theirs.map { $0.map(\.bitPattern) }, "\(name) row \(number + 1)")
            }
        }
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
