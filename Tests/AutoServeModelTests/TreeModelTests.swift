import Foundation
import Testing

@testable import AutoServeModel

/// The tree models against the answers of LightGBM's and XGBoost's own `predict`, committed as fixtures by
/// `Tests/Fixtures/trees/make_fixtures.py` (1,000 rows each, with missing values and unseen categories).
///
/// These call the evaluator in-process, every row of every fixture; the server tests send the same rows through the
/// real server and a plugin built by swiftc.
struct TreeModelTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/trees")
        .path

    static let names = [
        "lgb_binary", "lgb_multiclass", "lgb_regression", "lgb_rf", "lgb_categorical", "lgb_missing", "lgb_zero", "lgb_large", "xgb_binary",
        "xgb_multiclass", "xgb_regression", "xgb_categorical",
    ]

    /// One fixture: its rows and what the library answered for each.
    struct Fixture {
        var model: TreeModel
        var rows: [[String: JSON]]
        var expected: [[String: JSON]]

        init(_ name: String) throws {
            let folder = "\(TreeModelTests.fixtures)/\(name)"
            let kind: TreeModel.Kind = name.hasPrefix("lgb") ? .lightgbm : .xgboost
            model = try TreeModel(kind: kind, file: "\(folder)/\(kind == .lightgbm ? "model.txt" : "model.json")", output: .raw)
            rows = try Self.lines("\(folder)/rows.jsonl")
            expected = try Self.lines("\(folder)/expected.jsonl")
        }

        static func lines(_ path: String) throws -> [[String: JSON]] {
            try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
                try JSONDecoder().decode([String: JSON].self, from: Data($0.utf8))
            }
        }
    }

    static func close(_ actual: Double, _ expected: Double) -> Bool {
        actual == expected || abs(actual - expected) <= 1e-9 * max(abs(actual), abs(expected))
    }

    @Test(arguments: names)
    func rawScoresAndValuesMatchTheLibrary(_ name: String) throws {
        let fixture = try Fixture(name)
        #expect(fixture.rows.count == 1000)
        var refused = 0
        for (number, (row, expected)) in zip(fixture.rows, fixture.expected).enumerated() {
            if expected["error"] != nil {
                #expect(throws: ModelError.self, "\(name) row \(number + 1) should be refused") { try fixture.model.values(of: row) }
                refused += 1
                continue
            }
            let features = try fixture.model.values(of: row)
            let raw = fixture.model.raw(features)
            let wantedRaw = expected["raw"]!.array!.map { $0.double! }
            let value = fixture.model.value(features)
            let wantedValue = expected["value"]!.array!.map { $0.double! }
            // The raw scores are the library's sums to the last bit (the same additions in the same order).
            #expect(raw == wantedRaw, "\(name) row \(number + 1): raw \(raw), wanted \(wantedRaw)")
            #expect(
                value.count == wantedValue.count && zip(value, wantedValue).allSatisfy(Self.close),
                "\(name) row \(number + 1): value \(value), wanted \(wantedValue)")
        }
        #expect(name == "xgb_categorical" ? refused > 10 : refused == 0)
    }

    /// A row read from its bytes (`TreeModel.Row`, what the plugin decodes) answers what the same row as a dictionary
    /// answers, errors included: every fixture row, and rows of repeated, escaped, unknown and non-ASCII names and of
    /// numbers only Foundation reads.
    @Test(arguments: names)
    func rowsReadFromTheirBytesAnswerAsTheirDictionaries(_ name: String) throws {
        let fixture = try Fixture(name)
        let lines = try String(contentsOfFile: "\(Self.fixtures)/\(name)/rows.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
        let first = fixture.model.features[0].name
        let numeric = fixture.model.features.first { !$0.categorical }?.name ?? first
        // The fixtures' names are ASCII: each character as its \u escape.
        let escaped = numeric.unicodeScalars.map { String(format: "\\u%04x", $0.value) }.joined()
        let crafted = [
            #"{"\#(numeric)": 1.5, "\#(numeric)": "not a number"}"#, #"{"\#(escaped)": 2.25, "unknown": [1, {"a": 2}], "ünïcode": 1}"#,
            #"{"\#(numeric)": 1e2, "\#(first)": null}"#, #"{"\#(numeric)": 12345678901234567890.5}"#, #"{"\#(numeric)": "a string"}"#,
            #"{"\#(numeric)": true}"#, #"{"\#(numeric)": {"a": 1}}"#, #"{}"#, #"{"unknown": 1e400}"#,
        ]
        for line in lines + crafted {
            let bytes = Array(line.utf8)
            let fromBytes = Self.outcome {
                try fixture.model.predict(try bytes.withUnsafeBufferPointer { try _AutoServePlugin.decode(TreeModel.Row.self, from: $0) })
            }
            let fromDictionary = Self.outcome {
                try fixture.model.predict(try bytes.withUnsafeBufferPointer { try _AutoServePlugin.decode([String: JSON].self, from: $0) })
            }
            #expect(fromBytes == fromDictionary, "\(name): \(line)")
        }
    }

    /// An answer or the message of its error (both answered 400 with it), to compare two ways of scoring.
    static func outcome(_ body: () throws -> [String: JSON]) -> Result<[String: JSON], Message> {
        do {
            return .success(try body())
        } catch let error as TreeVariablesError {
            return .failure(Message(text: error.message))
        } catch {
            return .failure(Message(text: _AutoServePlugin.describeDecoding(error)))
        }
    }

    struct Message: Error, Equatable {
        var text: String
    }

    @Test func answersFollowTheOutputSetting() throws {
        let file = "\(Self.fixtures)/lgb_multiclass/model.txt"
        let row: [String: JSON] = ["f0": 0.5, "f1": -1, "f2": 2, "f3": 0.1, "f4": nil]
        let names = ["low", "medium", "high"]
        let probabilities = try TreeModel(kind: .lightgbm, file: file, classNames: names).predict(row)
        let values = probabilities["probabilities"]!.object!
        #expect(Set(values.keys) == Set(names))
        #expect(abs(values.values.map { $0.double! }.reduce(0, +) - 1) < 1e-12)
        let best = values.max { $0.value.double! < $1.value.double! }!.key
        #expect(try TreeModel(kind: .lightgbm, file: file, output: .class, classNames: names).predict(row) == ["class": .string(best)])
        let raw = try TreeModel(kind: .lightgbm, file: file, output: .raw).predict(row)
        #expect(Set(raw["raw"]!.object!.keys) == ["0", "1", "2"])

        let binary = "\(Self.fixtures)/lgb_binary/model.txt"
        let probability = try TreeModel(kind: .lightgbm, file: binary).predict(["x0": 1])["probability"]!.double!
        #expect(probability > 0 && probability < 1)
        let label = try TreeModel(kind: .lightgbm, file: binary, output: .class, classNames: ["no", "yes"]).predict(["x0": 1])
        #expect(label == ["class": .string(probability > 0.5 ? "yes" : "no")])
        let regression = try TreeModel(kind: .xgboost, file: "\(Self.fixtures)/xgb_regression/model.json").predict(["r0": 1])
        #expect(regression["prediction"]?.double != nil)
    }

    @Test func variablesOfTheWrongTypeAreRefusedByName() throws {
        let model = try TreeModel(kind: .lightgbm, file: "\(Self.fixtures)/lgb_categorical/model.txt")
        #expect(try model.values(of: ["colour": "red", "size": "XL", "length": 3, "weight": true]).count == 4)
        for (row, words) in [
            (["length": JSON.string("long")], ["'length'", "must be a number"]),
            (["colour": JSON.array([])], ["'colour'", "not an array"]),
            (["colour": JSON.number(2)], ["'colour'", "as a string", "amber"]),
            (["size": JSON.bool(true)], ["'size'", "boolean"]),
        ] {
            do {
                _ = try model.values(of: row)
                Issue.record("\(row) was accepted")
            } catch let error as TreeVariablesError {
                for word in words { #expect(error.message.contains(word), "\(error.message)") }
            }
        }
        // LightGBM scores an unseen category as missing; XGBoost refuses it, naming it.
        #expect(try model.values(of: ["colour": "violet"])[1].isNaN)
        let xgboost = try TreeModel(kind: .xgboost, file: "\(Self.fixtures)/xgb_categorical/model.json")
        do {
            _ = try xgboost.values(of: ["colour": "violet"])
            Issue.record("an unseen category was accepted")
        } catch ModelError.invalidInput(let message) {
            #expect(message.contains("'violet'") && message.contains("'colour'") && message.contains("amber"))
        }
    }

    /// Variables are found by name as a `[String: Int]` would find them, whatever the names: ASCII ones by their
    /// bytes, the others (and those canonically equal to them, as the Kelvin sign is to K) as strings.
    @Test func featureNamesAreFoundAsADictionaryOfStringsFindsThem() {
        let ascii = (0..<300).map { "v\($0)" } + ["", "K", "a b", "x\u{7f}"]
        let unicode = ["é", "K", "日本", "naïve"]
        let asked = ascii + unicode + ["\u{212A}", "e\u{301}", "nai\u{308}ve", "v300", "V1", "v01", "é ", "日"]
        for names in [ascii, unicode] {
            let index = FeatureIndex(names)
            let positions = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
            for name in asked {
                #expect(index.position(of: name) == positions[name], "\(name.unicodeScalars.map { String($0.value, radix: 16) })")
            }
            // A name read from JSON (a bridged or substring-backed string) too.
            let decoded = try? JSONDecoder().decode([String: Int].self, from: Data("{\"K\": 1, \"\\u212a\": 2}".utf8))
            for name in decoded?.keys.sorted() ?? [] { #expect(index.position(of: name) == positions[name]) }
        }
    }

    @Test func unsupportedModelsAreRefusedSayingWhat() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("trees-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let lightgbm = try String(contentsOfFile: "\(Self.fixtures)/lgb_binary/model.txt", encoding: .utf8)
        let xgboost = try String(contentsOfFile: "\(Self.fixtures)/xgb_binary/model.json", encoding: .utf8)
        let cases: [(TreeModel.Kind, String, [String])] = [
            (
                .lightgbm, lightgbm.replacingOccurrences(of: "objective=binary sigmoid:1", with: "objective=lambdarank"),
                ["objective 'lambdarank' is not supported"]
            ),
            (.lightgbm, lightgbm.replacingOccurrences(of: "is_linear=0", with: "is_linear=1"), ["linear trees", "1.txt:"]),
            (.lightgbm, String(lightgbm.prefix(20_000)), ["is the file whole?"]),
            (.lightgbm, "not a model", ["not a LightGBM text model"]),
            (.xgboost, xgboost.replacingOccurrences(of: "\"name\":\"gbtree\"", with: "\"name\":\"dart\""), ["booster 'dart' is not supported"]),
            (.xgboost, xgboost.replacingOccurrences(of: "\"name\":\"gbtree\"", with: "\"name\":\"gblinear\""), ["booster 'gblinear' is not supported"]),
            (.xgboost, xgboost.replacingOccurrences(of: "binary:logistic", with: "rank:pairwise"), ["objective 'rank:pairwise' is not supported"]),
            (.xgboost, "[1, 2]", ["not an XGBoost JSON model"]),
        ]
        for (index, (kind, text, words)) in cases.enumerated() {
            let file = "\(folder)/\(index).\(kind == .lightgbm ? "txt" : "json")"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            do {
                _ = try TreeModel(kind: kind, file: file)
                Issue.record("case \(index) loaded")
            } catch let error as TreeModelError {
                for word in words { #expect(error.description.contains(word), "case \(index): \(error)") }
            }
        }
        #expect(throws: TreeModelError.self) { try TreeModel(kind: .lightgbm, file: "\(Self.fixtures)/lgb_regression/model.txt", output: .class) }
        #expect(throws: TreeModelError.self) { try TreeModel(kind: .lightgbm, file: "\(Self.fixtures)/lgb_multiclass/model.txt", classNames: ["a", "b"]) }
        #expect(throws: TreeModelError.self) { try TreeModel(kind: .lightgbm, file: "\(Self.fixtures)/lgb_binary/model.txt", features: ["a"]) }
    }
}
