import AutoServeApp
import Foundation
import ServingCore
import Testing

/// docs/operations.md's "Scoring a file": the `autoserve score` binary against the real server (`--url`) and with the model
/// built here (`--models-dir`), on CSV and JSON Lines, with a failed row, its progress and its errors.
@Suite(.serialized)
struct ScoreCommandTests {
    /// 2,500 Iris rows as CSV, row 1,234 (1-based) unreadable as a number.
    static func irisCSV() throws -> (path: String, rows: [String]) {
        var lines = ["sepal_length,sepal_width,petal_length,petal_width"]
        var rows: [String] = []
        for index in 0..<2500 {
            let values = [4.3 + Double(index % 36) / 10, 2.0 + Double(index % 23) / 10, 1 + Double(index % 59) / 10, 0.1 + Double(index % 24) / 10]
            let cells = index == 1233 ? ["long"] + values.dropFirst().map { "\($0)" } : values.map { "\($0)" }
            lines.append(cells.joined(separator: ","))
            rows.append(#"{"sepal_length": \#(values[0]), "sepal_width": \#(values[1]), "petal_length": \#(values[2]), "petal_width": \#(values[3])}"#)
        }
        let path = "\(try Paths.temporaryFolder("score-input"))/iris.csv"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return (path, rows)
    }

    @Test func aFileScoredOnTheServerAndHereAnswersAsSingleRowRequests() async throws {
        let (input, rows) = try Self.irisCSV()
        let folder = try Paths.temporaryFolder("score-output")
        let server = try await TestServer.start(models: ["Iris": "\(Paths.modelsServe)/Iris"]) { $0.maxBatchRows = 2000 }
        try await withTestServer(server) { server async throws in
            let remote = try await offThread {
                try CommandLineTests.run(["score", "--model", "Iris", "--url", "http://127.0.0.1:\(server.port)", input, "-o", "\(folder)/remote.jsonl"])
            }
            // One row failed: exit status 3, and the summary names its code, its row and the variable.
            #expect(remote.status == 3, "\(remote.output)")
            #expect(remote.output.contains("2500 rows scored in"), "\(remote.output)")
            #expect(remote.output.contains("1 failed:\n  1 invalid_variables, the first at row 1234: Iris:"), "\(remote.output)")
            #expect(remote.output.contains("sepal_length"))
            // Not a terminal: plain progress lines, the last one complete.
            #expect(remote.output.contains("scored 2500/2500 rows, "), "\(remote.output)")
            #expect(!remote.output.contains("\r"))

            let lines = try String(contentsOfFile: "\(folder)/remote.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
            #expect(lines.count == 2500)
            let failed = try JSONParser.parse(Array(lines[1233].utf8))
            #expect(failed["_error"]?["code"] == .string("invalid_variables"), "\(lines[1233])")
            for index in stride(from: 0, to: 2500, by: 311) {
                let alone = try await server.client.post("/Iris", #"{"variables": \#(rows[index])}"#)
                #expect(try JSONParser.parse(Array(lines[index].utf8)) == alone.json, "row \(index + 1)")
            }

            // --models-dir: the same answers, byte for byte, without a server; only the model asked for is built.
            let models = try Paths.modelsFolder(["Iris": "\(Paths.modelsServe)/Iris", "Broken": "\(Paths.fixtures)/broken/CompileError"])
            let temporary = try Paths.temporaryFolder("score-tmpdir")
            let local = try await offThread {
                try CommandLineTests.run(
                    ["score", "--model", "Iris", "--models-dir", models, input, "-o", "\(folder)/local.jsonl", "--batch-size", "300"],
                    environment: ["TMPDIR": temporary])
            }
            #expect(local.status == 3, "\(local.output)")
            #expect(try Paths.workerFolders(in: temporary) == [], "the workers' temporary folders are removed")
            #expect(!local.output.contains("CompileError"), "\(local.output)")
            #expect(FileManager.default.contents(atPath: "\(folder)/local.jsonl") == FileManager.default.contents(atPath: "\(folder)/remote.jsonl"))

            // A batch over the server's MAX_BATCH_ROWS stops the run with the server's reason and the fix.
            let tooMany = try await offThread {
                try CommandLineTests.run(["score", "--model", "Iris", "--url", "http://127.0.0.1:\(server.port)", input, "--batch-size", "2500"])
            }
            #expect(tooMany.status == 1, "\(tooMany.output)")
            #expect(tooMany.output.contains("answered 413: the batch has 2500 rows, and one request scores 2000 at most"), "\(tooMany.output)")
            #expect(tooMany.output.contains("lower --batch-size"))
            let unknown = try await offThread {
                try CommandLineTests.run(["score", "--model", "Nope", "--url", "http://127.0.0.1:\(server.port)/", input])
            }
            #expect(unknown.status == 1)
            #expect(unknown.output.contains("answered 404: no model named 'Nope'; the available ones are Iris"), "\(unknown.output)")
        }
    }

    @Test func jsonLinesRequestBodiesAndInferenceLogLinesAreRows() async throws {
        let folder = try Paths.temporaryFolder("score-jsonl")
        let input = "\(folder)/rows.jsonl"
        let setosa = #"{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}"#
        let lines = [
            setosa,
            #"{"variables": \#(setosa)}"#,
            "",
            #"{"time":"2026-11-30T00:00:00Z","request_id":"a1","model":"Iris","status":400,"variables":\#(setosa),"error":{}}"#,
            #"{"time":"2026-11-30T00:00:00Z","request_id":"a2","model":"HousePrice","status":200,"variables":{"rooms":3}}"#,
        ]
        try lines.joined(separator: "\n").write(toFile: input, atomically: true, encoding: .utf8)
        let models = try Paths.modelsFolder(["Iris": "\(Paths.modelsServe)/Iris"])
        let result = try await offThread { try CommandLineTests.run(["score", "--model", "Iris", "--models-dir", models, input]) }
        #expect(result.status == 0, "\(result.output)")
        let answers = result.output.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(answers.count == 3, "\(result.output)")
        #expect(answers.allSatisfy { $0.contains(#""iris_class":"setosa""#) }, "\(result.output)")
        // -o writes into what is there (as `-o /dev/null` must): a link stays a link, its target gets the lines.
        try "old text that is longer than the answers, all of it replaced\n".write(toFile: "\(folder)/target.jsonl", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: "\(folder)/link.jsonl", withDestinationPath: "\(folder)/target.jsonl")
        let linked = try await offThread {
            try CommandLineTests.run(["score", "--model", "Iris", "--models-dir", models, input, "-o", "\(folder)/link.jsonl"])
        }
        #expect(linked.status == 0, "\(linked.output)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(folder)/link.jsonl")) == "\(folder)/target.jsonl")
        let written = try String(contentsOfFile: "\(folder)/target.jsonl", encoding: .utf8)
        #expect(written.split(separator: "\n").count == 3 && !written.contains("old text"), "\(written)")
    }

    @Test func aTerminalShowsABarWithRateAndETA() async throws {
        let (input, _) = try Self.irisCSV()
        let models = try Paths.modelsFolder(["Iris": "\(Paths.modelsServe)/Iris"])
        let output = "\(try Paths.temporaryFolder("score-tty"))/out.jsonl"
        // `script` gives the command a terminal, as a person's shell would.
        let command = [Paths.binary, "score", "--model", "Iris", "--models-dir", models, input, "-o", output, "--batch-size", "100"]
            .map { "'\($0)'" }.joined(separator: " ")
        let result = try await offThread {
            try CommandLineTests.run(["-qec", command, "/dev/null"], executable: "/usr/bin/script")
        }
        #expect(result.status == 3, "\(result.output)")
        #expect(result.output.contains("\r[##############################] 2500/2500 rows"), "\(result.output)")
        #expect(result.output.contains("rows/s  ETA "))
    }

    @Test func unusableInputsStopWithTheirReason() async throws {
        let folder = try Paths.temporaryFolder("score-bad")
        let badJSON = "\(folder)/bad.jsonl"
        try "{\"a\": 1}\n{not json}\n".write(toFile: badJSON, atomically: true, encoding: .utf8)
        let good = "\(folder)/good.jsonl"
        try #"{"sepal_length": 5.1}"#.write(toFile: good, atomically: true, encoding: .utf8)
        let models = try Paths.modelsFolder(["Iris": "\(Paths.modelsServe)/Iris"])
        let cases: [([String], Int32, String)] = [
            (["score", "--model", "Iris", badJSON], 64, "give either --url (score on a running server) or --models-dir"),
            (["score", "--model", "Iris", "--url", "http://127.0.0.1:1", "--models-dir", models, badJSON], 64, "give either --url"),
            (["score", "--model", "Iris", "--url", "http://127.0.0.1:1", badJSON], 1, "\(badJSON):2: not a JSON line"),
            (["score", "--model", "Iris", "--url", "http://127.0.0.1:1", "\(folder)/missing.csv"], 1, "missing.csv: cannot read the file"),
            (["score", "--model", "Nope", "--models-dir", models, good], 1, "no model folder named 'Nope'"),
            (["score", "--model", "Iris", "--url", "ftp://example.com", badJSON], 1, "not an http(s) address"),
        ]
        for (arguments, status, message) in cases {
            let result = try await offThread { try CommandLineTests.run(arguments) }
            #expect(result.status == status, "\(arguments): \(result.output)")
            #expect(result.output.contains(message), "\(arguments): \(result.output)")
        }
        // No server at --url: the reason, and what to check.
        let refused = try await offThread { try CommandLineTests.run(["score", "--model", "Iris", "--url", "http://127.0.0.1:1", good]) }
        #expect(refused.status == 1 && refused.output.contains("is the server running at --url?"), "\(refused.output)")
    }
}

extension ScoreCommandTests {
    /// docs/explanations.md's "Scoring a file": `autoserve score --explain` writes each output with its `_explanation`, or
    /// with `-o FILE.csv` a CSV line per row (per row and class) with the base and one column per feature; the numbers
    /// are the libraries' own (`contributions.jsonl`).
    @Test func explanationsAreWrittenAsJSONLinesAndAsCSV() async throws {
        let folder = try Paths.temporaryFolder("score-explain")
        let trees = TreeModelServingTests.trees
        let rows = try TreeModelServingTests.lines("\(trees)/lgb_multiclass/rows.jsonl").prefix(300)
        let wanted = try TreeModelServingTests.lines("\(trees)/lgb_multiclass/contributions.jsonl").prefix(300).map { try JSONParser.parse(Array($0.utf8)) }
        let input = "\(folder)/rows.jsonl"
        try (rows.joined(separator: "\n") + "\n{\"f0\": \"high\"}\n").write(toFile: input, atomically: true, encoding: .utf8)
        let models = try Paths.modelsFolder(["Multi": "\(trees)/lgb_multiclass", "Iris": "\(Paths.modelsServe)/Iris"])
        let server = try await TestServer.start(models: ["Multi": "\(trees)/lgb_multiclass"])
        try await withTestServer(server) { server async throws in
            // JSON Lines, here: each output with its explanation per class; the bad row is its _error.
            let local = try await offThread {
                try CommandLineTests.run(["score", "--model", "Multi", "--models-dir", models, "--explain", input, "-o", "\(folder)/explained.jsonl"])
            }
            #expect(local.status == 3, "\(local.output)")
            let written = try String(contentsOfFile: "\(folder)/explained.jsonl", encoding: .utf8)
            let lines = try written.split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
            #expect(lines.count == 301)
            let features = try ExplanationServingTests.featureNames("lgb_multiclass")
            for (number, (line, expected)) in zip(lines, wanted).enumerated() {
                let lists = expected["contributions"]?.array?.map { $0.array?.compactMap(\.double) ?? [] } ?? []
                for (label, list) in zip(["low", "medium", "high"], lists) {
                    #expect(ExplanationServingTests.mismatch(line["_explanation"]?[label], list, features: features) == nil, "row \(number + 1) \(label)")
                }
            }
            #expect(lines[300]["_error"]?["code"] == .string("invalid_variables"))
            // CSV, on the server: a line per row and class, the base and a column per feature, then the error column.
            let remote = try await offThread {
                try CommandLineTests.run([
                    "score", "--model", "Multi", "--url", "http://127.0.0.1:\(server.port)", "--explain", input, "-o", "\(folder)/explained.csv",
                ])
            }
            #expect(remote.status == 3, "\(remote.output)")
            let text = try String(contentsOfFile: "\(folder)/explained.csv", encoding: .utf8)
            let csv: [[String]] = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            var header = ["row", "class", "base"]
            header += features.sorted()
            header.append("error")
            #expect(csv.first == header, "\(csv.first ?? [])")
            // The header, three classes of 300 rows, the failed row.
            #expect(csv.count == 902)
            for (number, expected) in wanted.enumerated() {
                let lists = expected["contributions"]?.array?.map { $0.array?.compactMap(\.double) ?? [] } ?? []
                // The classes in name order: high, low, medium.
                for (offset, (label, list)) in [("high", lists[2]), ("low", lists[0]), ("medium", lists[1])].enumerated() {
                    let cells = csv[1 + 3 * number + offset]
                    #expect(cells[0] == "\(number + 1)" && cells[1] == label, "\(cells)")
                    let byFeature = Dictionary(uniqueKeysWithValues: zip(features, list))
                    let values: [Double] = [list[list.count - 1]] + features.sorted().map { byFeature[$0] ?? .nan }
                    let equal = zip(cells[2...], values).allSatisfy { cell, value in ExplanationServingTests.equal(Double(cell) ?? .nan, value) }
                    #expect(equal, "row \(number + 1) \(label): \(cells)")
                }
            }
            // The failed row: its number, empty cells, and its error (quoted: its message holds commas).
            let failed = try #require(text.split(separator: "\n").last)
            #expect(failed.hasPrefix("301," + String(repeating: ",", count: header.count - 2) + #""invalid_variables: Multi: feature 'f0'"#), "\(failed)")
        }
        // A CSV without --explain, and a model that does not explain, say what to do.
        let plainCSV = try await offThread { try CommandLineTests.run(["score", "--model", "Iris", "--models-dir", models, input, "-o", "\(folder)/x.csv"]) }
        #expect(plainCSV.status == 64 && plainCSV.output.contains("a CSV file holds explanations; add --explain"), "\(plainCSV.output)")
        let iris = try await offThread { try CommandLineTests.run(["score", "--model", "Iris", "--models-dir", models, "--explain", input]) }
        #expect(iris.status == 1 && iris.output.contains("--explain: Iris does not explain its scores"), "\(iris.output)")
    }

    /// A feature or class a model file names like a spreadsheet formula is written as text (`'` before it), quoted
    /// where it holds a comma or a quote; the numbers stay numbers, negative ones included.
    @Test func namesThatLookLikeFormulasAreWrittenAsText() {
        var csv = ExplanationCSV()
        let answer = #"{"_explanation": {"base": 0.5, "contributions": {"=HYPERLINK(\"http://x\")": 1.5, "@SUM(A1)": -1, "plain": 0, "-minus": 2}}}"#
        let lines = String(decoding: csv.lines(Array((answer + "\n").utf8)) + csv.finish(), as: UTF8.self).split(separator: "\n")
        #expect(lines.first == #"row,base,'-minus,"'=HYPERLINK(""http://x"")",'@SUM(A1),plain,error"#)
        #expect(lines.last?.split(separator: ",", omittingEmptySubsequences: false).compactMap { Double($0) } == [1, 0.5, 2, 1.5, -1, 0])
    }
}
