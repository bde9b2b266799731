import AutoServeApp
import Foundation
import ServingCore
import Synchronization
import Testing

/// docs/models.md's "Models as data" through the real server: every fixture of `Tests/Fixtures/trees` (LightGBM and
/// XGBoost models trained by `make_fixtures.py`) built by swiftc into its plugin, loaded in a worker process and
/// asked for each of its 1,000 rows over HTTP (all in one batch, and every 20th alone); the answers are the libraries' own within a relative 1e-9.
@Suite(.serialized)
struct TreeModelServingTests {
    static let trees = "\(Paths.fixtures)/trees"
    static let names = [
        "lgb_binary", "lgb_multiclass", "lgb_regression", "lgb_rf", "lgb_categorical", "lgb_missing", "lgb_zero", "lgb_large", "xgb_binary",
        "xgb_multiclass", "xgb_regression", "xgb_categorical",
    ]

    static func lines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    static func close(_ actual: Double, _ expected: Double) -> Bool {
        actual == expected || abs(actual - expected) <= 1e-9 * max(abs(actual), abs(expected))
    }

    /// The raw scores of an answer, in class order (`class_names` of the folder, else "0", "1", …).
    static func rawScores(_ answer: JSONValue?, classNames: [String]) -> [Double]? {
        switch answer?["raw"] {
        case .number(let value)?: return [value]
        case .object(let members)?:
            let names = classNames.isEmpty ? (0..<members.count).map(String.init) : classNames
            return names.map { name -> Double? in if case .number(let value)? = members[name] { value } else { nil } }.compactMap { $0 }
        default: return nil
        }
    }

    @Test func everyFixtureRowAnswersAsTheLibraryThroughTheServer() async throws {
        let models = Dictionary(uniqueKeysWithValues: Self.names.map { ($0, "\(Self.trees)/\($0)") })
        try await withTestServer(try await TestServer.start(models: models)) { server async throws in
            let index = try await server.client.get("/")
            for name in Self.names {
                #expect(index.json?[name]?["state"] == .string("ready"), "\(name): \(index.json?[name]?.jsonText ?? "absent")")
            }
            let client = server.client
            for name in Self.names {
                let rows = try Self.lines("\(Self.trees)/\(name)/rows.jsonl")
                let expected = try Self.lines("\(Self.trees)/\(name)/expected.jsonl").map { try JSONParser.parse(Array($0.utf8)) }
                let classNames = name == "lgb_multiclass" ? ["low", "medium", "high"] : []
                /// What is wrong with the answer to row `number` (its status, and the body of a single row's answer or
                /// a batch's output), or nil when it is the library's.
                func mismatch(_ number: Int, status: Int, answer: JSONValue?, text: String) -> String? {
                    if expected[number]["error"] != nil {
                        let message = answer?["error"]?["message"]?.string ?? answer?["_error"]?["message"]?.string ?? ""
                        let refused = status == 422 || answer?["_error"]?["status"] == .number(422)
                        return refused && message.contains("was not seen in training")
                            ? nil : "row \(number + 1): \(status) \(text), wanted a 422 for an unseen category"
                    }
                    guard case .array(let wanted)? = expected[number]["raw"] else { return "row \(number + 1): the fixture has no raw scores" }
                    let wantedScores = wanted.compactMap { if case .number(let value) = $0 { value } else { nil } }
                    guard status == 200, let scores = Self.rawScores(answer, classNames: classNames), scores.count == wantedScores.count,
                        zip(scores, wantedScores).allSatisfy(Self.close)
                    else { return "row \(number + 1): \(status) \(text), wanted raw \(wantedScores)" }
                    return nil
                }
                // Every row in one batch (each row is scored as one), then every 20th row alone.
                let batch = try await client.post("/\(name)", #"{"rows": ["# + rows.joined(separator: ",") + "]}")
                guard batch.status == 200, case .array(let outputs)? = batch.json?["outputs"], outputs.count == rows.count else {
                    Issue.record("\(name): the batch answered \(batch.status) \(batch.text.prefix(300))")
                    continue
                }
                var mismatches = outputs.indices.compactMap { mismatch($0, status: 200, answer: outputs[$0], text: outputs[$0].jsonText) }
                for number in stride(from: 0, to: rows.count, by: 20) {
                    let answer = try await client.post("/\(name)", #"{"variables": "# + rows[number] + "}")
                    if let found = mismatch(number, status: answer.status, answer: answer.json, text: answer.text) { mismatches.append(found) }
                }
                #expect(mismatches.isEmpty, "\(name): \(mismatches.count) rows differ, first \(mismatches.prefix(3))")
            }
            // A tree model is one member of /all like any other.
            let all = try await client.post("/all", #"{"variables": {"x0": 1.5, "colour": "red"}}"#)
            #expect(all.status == 200)
            #expect(all.json?["lgb_binary"]?["raw"] != nil && all.json?["lgb_categorical"]?["raw"] != nil, "\(all.text)")
        }
    }

    @Test func creditScoreOfModelsServeAnswersItsExample() async throws {
        let log = "\(try Paths.temporaryFolder("tree-log"))/inference.jsonl"
        let server = try await TestServer.start(models: ["CreditScore": "\(Paths.modelsServe)/CreditScore"]) { $0.inferenceLog = log }
        try await withTestServer(server) { server async throws in
            let answer = try await server.client.post(
                "/CreditScore",
                #"{"variables": {"income": 42000, "debt_ratio": 0.45, "age": 29, "months_employed": 14, "late_payments": 2, "home": "rent", "purpose": "business"}}"#
            )
            #expect(answer.status == 200, "\(answer.text)")
            guard case .number(let probability)? = answer.json?["probability"] else {
                Issue.record("no probability in \(answer.text)")
                return
            }
            // The example of its model.yaml, which LightGBM's predict gave when the script trained it.
            let manifest = try String(contentsOfFile: "\(Paths.modelsServe)/CreditScore/model.yaml", encoding: .utf8)
            #expect(manifest.contains("probability: \(probability)}"), "\(probability)")
            let wrongType = try await server.client.post("/CreditScore", #"{"variables": {"income": "a lot"}}"#)
            #expect(wrongType.status == 400)
            #expect(wrongType.error("message")?.string?.contains("'income'") == true, "\(wrongType.text)")
            let missing = try await server.client.post("/CreditScore", #"{"variables": {}}"#)
            #expect(missing.status == 200, "every feature missing takes the default directions: \(missing.text)")
            // Explained: the log keeps the explanation with the output (docs/explanations.md, "The API").
            let explained = try await server.client.post("/CreditScore", #"{"variables": {"income": 51000, "late_payments": 1}, "explain": true}"#)
            #expect(explained.status == 200 && explained.json?["_explanation"]?["base"] != nil, "\(explained.text)")
            // The inference log keeps a tree model's rows like any other's.
            try await eventually("the rows reach the inference log") {
                let lines = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n") ?? []
                return lines.contains { $0.contains(#""model":"CreditScore""#) && $0.contains(#""output":{"probability":\#(probability)}"#) }
                    && lines.contains { $0.contains(#""status":400"#) && $0.contains("'income'") }
                    && lines.contains { $0.contains(#""income": 51000"#) && $0.contains(#""_explanation":{"base":"#) }
            }
        }
    }

    @Test func foldersTheSDKCannotServeFailLikeACompileErrorAndTheOthersServe() async throws {
        let folder = try Paths.temporaryFolder("tree-folders")
        let fileManager = FileManager.default
        func make(_ name: String, from fixture: String, manifest: String, change: (String) -> String = { $0 }, etls: Bool = false) throws {
            try fileManager.createDirectory(atPath: "\(folder)/\(name)", withIntermediateDirectories: true)
            let file = fixture.hasPrefix("lgb") ? "model.txt" : "model.json"
            let text = try String(contentsOfFile: "\(Self.trees)/\(fixture)/\(file)", encoding: .utf8)
            try change(text).write(toFile: "\(folder)/\(name)/\(file)", atomically: true, encoding: .utf8)
            try manifest.write(toFile: "\(folder)/\(name)/model.yaml", atomically: true, encoding: .utf8)
            if etls { try "struct M {}\n".write(toFile: "\(folder)/\(name)/etls.swift", atomically: true, encoding: .utf8) }
        }
        try make("Good", from: "lgb_binary", manifest: "kind: lightgbm\nfile: model.txt\n")
        try make("Dart", from: "xgb_binary", manifest: "kind: xgboost\n", change: { $0.replacingOccurrences(of: #""name":"gbtree""#, with: #""name":"dart""#) })
        try make("Both", from: "lgb_binary", manifest: "kind: lightgbm\n", etls: true)
        try make("Linear", from: "lgb_binary", manifest: "kind: lightgbm\n", change: { $0.replacingOccurrences(of: "is_linear=0", with: "is_linear=1") })
        try make("Renamed", from: "lgb_binary", manifest: "kind: lightgbm\nfile: booster.txt\n")
        try make("Classless", from: "lgb_regression", manifest: "kind: lightgbm\noutput: class\n")
        let models = Dictionary(uniqueKeysWithValues: ["Good", "Dart", "Both", "Linear", "Renamed", "Classless"].map { ($0, "\(folder)/\($0)") })
        try await withTestServer(try await TestServer.start(models: models)) { server async throws in
            let index = try await server.client.get("/")
            #expect(index.json?["Good"]?["state"] == .string("ready"))
            let wanted = [
                "Dart": "booster 'dart' is not supported", "Both": "remove etls.swift to serve model.txt", "Linear": "linear trees",
                "Renamed": "booster.txt is not in the folder", "Classless": "output: class needs a classifier",
            ]
            for (name, words) in wanted {
                let error = index.json?[name]?["last_error"]?.jsonText ?? "none"
                #expect(index.json?[name]?["state"] == .string("failed"), "\(name): \(index.json?[name]?.jsonText ?? "absent")")
                #expect(error.contains(words), "\(name): \(error)")
            }
            let linearError = index.json?["Linear"]?["last_error"]?.jsonText ?? ""
            #expect(linearError.contains("Linear/model.txt"), "the error names the file: \(linearError)")
            #expect(try await server.client.post("/Good", #"{"variables": {"x0": 1}}"#).status == 200)
        }
    }

    @Test func aPushOfTheModelFileAloneIsANewVersionSwappedWithNoFailedRequest() async throws {
        let first = try String(contentsOfFile: "\(Self.trees)/lgb_binary/model.txt", encoding: .utf8)
        // The second version: the same trees with every leaf's value doubled, so that each answer tells which served.
        let second = first.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard line.hasPrefix("leaf_value=") else { return String(line) }
            return "leaf_value=" + line.dropFirst("leaf_value=".count).split(separator: " ").map { String(Double($0)! * 2) }.joined(separator: " ")
        }.joined(separator: "\n")
        let repository = try GitFixture.make(files: ["Trees/model.yaml": "kind: lightgbm\noutput: raw\n", "Trees/model.txt": first])
        try await withTestServer(
            try await TestServer.start(models: [:]) { configuration in
                configuration.modelsRepo = repository.path
                configuration.adminToken = Secret("tree-admin")
            }
        ) { server async throws in
            let client = server.client
            let row = #"{"variables": {"x0": 0.3, "x1": -1.2, "x2": 0.8}}"#
            guard case .number(let before)? = try await client.post("/Trees", row).json?["raw"] else {
                Issue.record("no raw score")
                return
            }
            let firstVersion = try repository.treeID("Trees")
            let stop = Flag()
            let answered = Tally()
            let load = Task {
                try await withThrowingTaskGroup(of: (failed: Int, scores: Set<Double>, versions: Set<String>).self) { group in
                    for _ in 0..<4 {
                        group.addTask {
                            var failed = 0
                            var scores = Set<Double>()
                            var versions = Set<String>()
                            while !stop.isSet {
                                let answer = try await client.post("/Trees", row)
                                if answer.status == 200, case .number(let score)? = answer.json?["raw"] {
                                    scores.insert(score)
                                    versions.insert(answer.header("X-Model-Version") ?? "")
                                    answered.add()
                                } else {
                                    failed += 1
                                }
                            }
                            return (failed, scores, versions)
                        }
                    }
                    return try await group.reduce(into: (failed: 0, scores: Set<Double>(), versions: Set<String>())) { total, next in
                        total.failed += next.failed
                        total.scores.formUnion(next.scores)
                        total.versions.formUnion(next.versions)
                    }
                }
            }
            try await eventually("the load runs") { answered.count > 0 }
            try repository.write("Trees/model.txt", second)
            try repository.commit("doubled leaves")
            let secondVersion = try repository.treeID("Trees")
            #expect(secondVersion != firstVersion)
            #expect(try await client.send("POST", "/-/sync", headers: ["Authorization": "Bearer tree-admin"]).status == 202)
            try await eventually("the new file serves") { try await client.post("/Trees", row).header("X-Model-Version") == secondVersion }
            stop.set()
            let totals = try await load.value
            #expect(totals.failed == 0)
            #expect(totals.versions == [firstVersion, secondVersion])
            #expect(totals.scores.count == 2 && totals.scores.contains(before) && totals.scores.contains { Self.close($0, before * 2) }, "\(totals.scores)")
        }
    }
}
