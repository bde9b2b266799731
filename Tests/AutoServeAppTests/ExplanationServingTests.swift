import AutoServeApp
import Foundation
import ServingCore
import Testing

/// docs/explanations.md through the real server: tree fixtures built by swiftc into their plugins, asked with
/// `"explain": true` for every row (in one batch) and for rows alone; each `_explanation` equals the library's own
/// TreeSHAP (`contributions.jsonl`, written by `make_fixtures.py --contributions`) within 1e-9, per class for the
/// multiclass models. The suite needs no Python: the libraries' answers are committed.
@Suite(.serialized)
struct ExplanationServingTests {
    static let trees = TreeModelServingTests.trees
    static let fixtures = ["lgb_binary", "lgb_multiclass", "lgb_categorical", "lgb_large", "xgb_multiclass", "xgb_categorical"]
    static let classNames = ["lgb_multiclass": ["low", "medium", "high"], "xgb_multiclass": ["0", "1", "2", "3"]]

    static func equal(_ actual: Double, _ expected: Double) -> Bool { abs(actual - expected) <= 1e-9 * max(1, abs(expected)) }

    /// What is wrong with one explanation (`_explanation`, or one class's), against the library's list of
    /// contributions (one per feature, in the model's order, then the base); nil when nothing is.
    static func mismatch(_ explanation: JSONValue?, _ wanted: [Double], features: [String], top: Int = 5) -> String? {
        guard case .number(let base)? = explanation?["base"], case .object(let contributions)? = explanation?["contributions"] else {
            return "no base and contributions in \(explanation?.jsonText ?? "nothing")"
        }
        guard equal(base, wanted[wanted.count - 1]) else { return "base \(base), wanted \(wanted[wanted.count - 1])" }
        guard contributions.count == features.count else { return "\(contributions.count) contributions for \(features.count) features" }
        for (feature, value) in zip(features, wanted) {
            guard case .number(let actual)? = contributions[feature], equal(actual, value) else {
                return "\(feature): \(contributions[feature]?.jsonText ?? "absent"), wanted \(value)"
            }
        }
        // `top`: the largest in magnitude first, as many as asked (those that moved the score).
        guard case .array(let listed)? = explanation?["top"], case .array(let reasons)? = explanation?["reasons"], reasons.count == listed.count else {
            return "no top and reasons"
        }
        let magnitudes = listed.compactMap { $0[1]?.double.map(abs) }
        let moved = wanted.dropLast().filter { $0 != 0 }.count
        guard magnitudes.count == min(top, moved), zip(magnitudes, magnitudes.dropFirst()).allSatisfy({ $0 >= $1 }) else {
            return "top \(explanation?["top"]?.jsonText ?? "")"
        }
        let largest = wanted.dropLast().map(abs).max() ?? 0
        guard magnitudes.first.map({ equal($0, largest) }) ?? (largest == 0) else {
            return "top starts with \(magnitudes.first ?? 0), the largest is \(largest)"
        }
        return nil
    }

    @Test func treeModelsExplainAsTheLibrariesThroughTheServer() async throws {
        var models = Dictionary(uniqueKeysWithValues: Self.fixtures.map { ($0, "\(Self.trees)/\($0)") })
        models["Echo"] = "\(Paths.fixtures)/models/Echo"
        try await withTestServer(try await TestServer.start(models: models)) { server async throws in
            let client = server.client
            for name in Self.fixtures {
                let rows = try TreeModelServingTests.lines("\(Self.trees)/\(name)/rows.jsonl")
                let wanted = try TreeModelServingTests.lines("\(Self.trees)/\(name)/contributions.jsonl").map { try JSONParser.parse(Array($0.utf8)) }
                let features = try Self.featureNames(name)
                /// What is wrong with the answer to row `number`, or nil.
                func check(_ number: Int, _ answer: JSONValue?) -> String? {
                    guard case .array(let classes)? = wanted[number]["contributions"] else {
                        return answer?["_error"]?["status"] == .number(422) || answer?["error"]?["status"] == .number(422)
                            ? nil : "row \(number + 1): \(answer?.jsonText.prefix(200) ?? ""), wanted a 422 for an unseen category"
                    }
                    let lists = classes.map { $0.array?.compactMap(\.double) ?? [] }
                    let explanation = answer?["_explanation"]
                    if let names = Self.classNames[name] {
                        for (label, list) in zip(names, lists) {
                            if let problem = Self.mismatch(explanation?[label], list, features: features) {
                                return "row \(number + 1) class \(label): \(problem) in \(answer?.jsonText.prefix(400) ?? "no answer")"
                            }
                        }
                        return nil
                    }
                    // Base plus contributions is the raw score the answer gives.
                    if case .number(let raw)? = answer?["raw"], abs(lists[0].reduce(0, +) - raw) > 1e-5 * max(1, abs(raw)) {
                        return "row \(number + 1): the contributions add up to \(lists[0].reduce(0, +)), raw is \(raw)"
                    }
                    return Self.mismatch(explanation, lists[0], features: features).map { "row \(number + 1): \($0)" }
                }
                let batch = try await client.post("/\(name)", #"{"explain": true, "rows": ["# + rows.joined(separator: ",") + "]}")
                guard batch.status == 200, case .array(let outputs)? = batch.json?["outputs"], outputs.count == rows.count else {
                    Issue.record("\(name): the batch answered \(batch.status) \(batch.text.prefix(300))")
                    continue
                }
                var problems = outputs.indices.compactMap { check($0, outputs[$0]) }
                for number in stride(from: 0, to: rows.count, by: 50) {
                    let answer = try await client.post("/\(name)", #"{"variables": "# + rows[number] + #", "explain": true}"#)
                    if let problem = check(number, answer.json) { problems.append("alone: \(problem)") }
                }
                #expect(problems.count == 0, "\(name): \(problems.count) rows differ, first \(problems.prefix(3))")
            }
            // Without explain nothing changes; explain: false is the same.
            for body in [#"{"variables": {"x0": 1}}"#, #"{"variables": {"x0": 1}, "explain": false}"#] {
                let plain = try await client.post("/lgb_binary", body)
                #expect(plain.status == 200 && plain.json?["_explanation"] == nil && plain.json?["raw"] != nil, "\(plain.text)")
            }
            // A wrong explain is a 400 naming it; a model without explain says so.
            let wrong = try await client.post("/lgb_binary", #"{"variables": {"x0": 1}, "explain": "yes"}"#)
            #expect(wrong.status == 400 && wrong.error("code") == .string("invalid_explain"), "\(wrong.text)")
            let echo = try await client.post("/Echo", #"{"variables": {"x0": 1}, "explain": true}"#)
            #expect(echo.status == 400 && echo.error("code") == .string("explain_unsupported"), "\(echo.text)")
            #expect(echo.error("message")?.string?.contains("Echo") == true, "\(echo.text)")
            let echoBatch = try await client.post("/Echo", #"{"rows": [{"a": 1}], "explain": true}"#)
            #expect(echoBatch.status == 400 && echoBatch.error("code") == .string("explain_unsupported"), "\(echoBatch.text)")
            // /all explains the models that can and lists the others under _errors.
            let all = try await client.post("/all", #"{"variables": {"x0": 1.5, "f0": 0.2, "colour": "red"}, "explain": true}"#)
            #expect(all.status == 200, "\(all.text)")
            #expect(all.json?["lgb_binary"]?["_explanation"]?["base"] != nil, "\(all.text.prefix(500))")
            #expect(all.json?["lgb_multiclass"]?["_explanation"]?["high"]?["contributions"] != nil)
            #expect(all.json?["_errors"]?["Echo"]?["code"] == .string("explain_unsupported"), "\(all.text.prefix(500))")
        }
    }

    /// The features of a fixture's model, in its order.
    static func featureNames(_ name: String) throws -> [String] {
        if name.hasPrefix("lgb") {
            let text = try String(contentsOfFile: "\(trees)/\(name)/model.txt", encoding: .utf8)
            let line = text.split(separator: "\n").first { $0.hasPrefix("feature_names=") }!
            return line.dropFirst("feature_names=".count).split(separator: " ").map(String.init)
        }
        let model = try JSONParser.parse(Array(try String(contentsOfFile: "\(trees)/\(name)/model.json", encoding: .utf8).utf8))
        return model["learner"]?["feature_names"]?.array?.compactMap(\.string) ?? []
    }

    @Test func aSwiftModelExplainsWithItsOwnFunction() async throws {
        try await withTestServer(try await TestServer.start(models: ["ChurnRisk": "\(Paths.modelsServe)/ChurnRisk"])) { server async throws in
            let answer = try await server.client.post(
                "/ChurnRisk",
                #"{"variables": {"tenure_months": 3, "monthly_charges": 95.5, "contract": "month-to-month", "support_calls": 1}, "explain": true}"#)
            #expect(answer.status == 200, "\(answer.text)")
            let explanation = answer.json?["_explanation"]
            #expect(explanation?["base"] == .number(-1.2))
            #expect(explanation?["contributions"] == .object(["tenure_months": 1.1, "monthly_charges": 0.6, "contract": 0.9, "support_calls": 0]))
            // model.yaml's explain: top 3, with the texts a person reads.
            #expect(explanation?["top"] == .array([["tenure_months", 1.1], ["contract", 0.9], ["monthly_charges", 0.6]]), "\(answer.text)")
            #expect(
                explanation?["reasons"] == .array(["Customer for less than a year", "Month-to-month contract", "Monthly charges above 80"]), "\(answer.text)")
            // The output is the same as without explain, and base plus contributions is its log-odds.
            let plain = try await server.client.post(
                "/ChurnRisk", #"{"variables": {"tenure_months": 3, "monthly_charges": 95.5, "contract": "month-to-month", "support_calls": 1}}"#)
            #expect(plain.json?["churn_probability"] == answer.json?["churn_probability"] && plain.json?["_explanation"] == nil)
            let probability = answer.json?["churn_probability"]?.double ?? 0
            #expect(abs(1 / (1 + exp(-(-1.2 + 1.1 + 0.6 + 0.9))) - probability) < 0.001)
            // The model's own errors stay its own.
            let missing = try await server.client.post("/ChurnRisk", #"{"variables": {}, "explain": true}"#)
            #expect(missing.status == 422, "\(missing.text)")
        }
    }
}
