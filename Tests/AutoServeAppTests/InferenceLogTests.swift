import Foundation
import ServingCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `INFERENCE_LOG` (docs/operations.md, "The inference log"): one JSON line per scored row, for model routes and for each
/// member of `/all`, on both scoring paths and in both isolation modes, written off the request path; a writer
/// held up drops and counts rows while requests keep answering; rotation keeps every line once; SIGTERM flushes.
@Suite(.serialized)
struct InferenceLogTests {
    static func lines(_ path: String) -> [JSONValue] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { try? JSONParser.parse(Array($0.utf8)) }
    }

    static func server(_ environment: [String: String], models: [String: String]) throws -> BinaryServer {
        try BinaryServer(environment: environment.merging(["MODELS_DIR": try Paths.modelsFolder(models), "STATE_DIR": Paths.sharedState]) { $1 })
    }

    @Test(arguments: ["process", "inprocess"])
    func everyScoredRowIsALineWithItsRequestID(isolation: String) async throws {
        let folder = try Paths.temporaryFolder("inference-log")
        let path = "\(folder)/inference.jsonl"
        let echo = "\(Paths.fixtures)/models/Echo"
        let server = try Self.server(["INFERENCE_LOG": path, "MODEL_ISOLATION": isolation], models: ["Echo": echo, "Other": echo])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync()
        let index = try await client.get("/").json
        let version = try #require(index?["Echo"]?["version"])

        // The channel handler's path, with the client's id.
        let first = try await client.send("POST", "/Echo", body: #"{"variables": {"a": 1, "b": "x"}}"#, headers: ["X-Request-ID": "client-row-1"])
        #expect(first.status == 200)
        #expect(first.header("X-Request-ID") == "client-row-1")
        // Hummingbird's path (Connection: close), with an id the server refuses and replaces.
        let second = try await client.send(
            "POST", "/Echo", body: #"{"variables": {"a": 2}}"#, headers: ["X-Request-ID": "has spaces and ;", "Connection": "close"])
        #expect(second.status == 200)
        let replaced = try #require(second.header("X-Request-ID"))
        #expect(replaced != "has spaces and ;" && !replaced.isEmpty)
        // /all: one line per member, one id.
        let all = try await client.post("/all", #"{"variables": {"a": 3}}"#)
        #expect(all.status == 200)
        let allID = try #require(all.header("X-Request-ID"))
        // A row the model rejects, and a body that is not JSON: lines with their error.
        #expect(try await client.post("/Echo", #"{"variables": {"mode": "reject"}}"#).status == 422)
        #expect(try await client.post("/Echo", "not json").status == 400)
        // Requests to no model are not rows of a model: no line. Every answer has an id.
        #expect(try await client.post("/Nobody", "{}").header("X-Request-ID") != nil)
        #expect(try await client.get("/healthz").header("X-Request-ID") != nil)

        // SIGTERM flushes what is queued: every line is there once the server has exited.
        await server.stopped()
        let lines = Self.lines(path)
        #expect(lines.count == 6, "\(lines)")
        let byID = Dictionary(grouping: lines) { $0["request_id"]?.string ?? "" }
        let row = try #require(byID["client-row-1"]?.first)
        #expect(row["model"] == .string("Echo"))
        #expect(row["version"] == version)
        #expect(row["commit"] == .null, "no commit in folder mode")
        #expect(row["route"] == .string("model"))
        #expect(row["variables"] == .object(["a": .number(1), "b": .string("x")]))
        #expect(row["output"]?["echo"] == .object(["a": .number(1), "b": .string("x")]))
        #expect(row["status"] == .number(200))
        #expect(row["error"] == nil)
        if case .number(let latency) = row["latency_ms"] { #expect(latency >= 0 && latency < 60_000) } else { Issue.record("no latency_ms") }
        let time = try #require(row["time"]?.string)
        #expect(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil, "\(time)")
        #expect(byID[replaced]?.first?["variables"] == .object(["a": .number(2)]), "the responder's path")
        let members = byID[allID] ?? []
        #expect(Set(members.compactMap { $0["model"]?.string }) == ["Echo", "Other"])
        #expect(members.allSatisfy { $0["route"] == .string("all") && $0["status"] == .number(200) })
        let rejected = try #require(lines.first { $0["status"] == .number(422) })
        #expect(rejected["error"]?["code"] == .string("invalid_input"))
        #expect(rejected["output"] == nil)
        let unparsed = try #require(lines.first { $0["status"] == .number(400) })
        #expect(unparsed["variables"] == .null)
        #expect(unparsed["error"]?["code"] == .string("invalid_json"))
    }

    /// The file is a pipe the test opens but never reads: the writer blocks once the pipe is full, the queue fills,
    /// and the rows after it are dropped and counted, while every request answers 200.
    @Test func aWriterHeldUpDropsAndCountsWhileRequestsAnswer() async throws {
        let folder = try Paths.temporaryFolder("inference-fifo")
        let path = "\(folder)/inference.jsonl"
        #expect(mkfifo(path, 0o644) == 0)
        let reader = open(path, O_RDONLY | O_NONBLOCK)
        #expect(reader >= 0)
        defer { close(reader) }
        let server = try Self.server(["INFERENCE_LOG": path], models: ["Echo": "\(Paths.fixtures)/models/Echo"])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync()
        // Rows of 64 KiB (and their echo): the 16 MiB queue holds about 128 of them.
        let body = #"{"variables": {"pad": "\#(String(repeating: "x", count: 64 << 10))"}}"#
        for row in 0..<400 {
            let answer = try await client.post("/Echo", body)
            #expect(answer.status == 200, "row \(row)")
            if answer.status != 200 { break }
        }
        let metrics = try await client.get("/metrics").text
        let dropped = metrics.split(separator: "\n").first { $0.hasPrefix("autoserve_inference_log_dropped_total ") }
        let count = dropped.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(count >= 200, "\(dropped ?? "no autoserve_inference_log_dropped_total")")
        // The stop does not hang on the held writer.
        await server.stopped()
        #expect(server.process.terminationStatus == 0)
        #expect(server.logs.contains("held up by its file"), "\(server.logs.suffix(1500))")
    }

    /// A disk that fills up, as `ulimit -f` makes it (the server ignores SIGXFSZ): writes fail, the rows are dropped
    /// and counted, the failure is logged once, and every request still answers 200.
    @Test func aFullDiskDropsAndCountsWhileRequestsAnswer() async throws {
        let models = try Paths.modelsFolder(["Echo": "\(Paths.fixtures)/models/Echo"])
        let state = try Paths.temporaryFolder("inference-full-disk-state")
        // Built first without the limit: a compiler under it could not write its output either.
        let builder = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": state])
        try await HTTPClient(base: "http://127.0.0.1:\(try await builder.waitUntilListening())").waitForTheFirstSync()
        await builder.stopped()

        let path = "\(try Paths.temporaryFolder("inference-full-disk"))/inference.jsonl"
        let server = try BinaryServer(
            environment: ["MODELS_DIR": models, "STATE_DIR": state, "INFERENCE_LOG": path], launcher: ["/usr/bin/prlimit", "--fsize=65536", "--"])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync()
        let body = #"{"variables": {"pad": "\#(String(repeating: "z", count: 2048))"}}"#
        for row in 0..<100 {
            let answer = try await client.post("/Echo", body)
            #expect(answer.status == 200, "row \(row)")
            if answer.status != 200 { break }
        }
        try await eventually("the writer has tried every row", timeout: .seconds(60)) {
            let metrics = try await client.get("/metrics").text
            func value(_ name: String) -> Double {
                metrics.split(separator: "\n").first { $0.hasPrefix("\(name) ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
            }
            return value("autoserve_inference_log_lines_total") + value("autoserve_inference_log_dropped_total") >= 100
                && value("autoserve_inference_log_dropped_total") > 0
        }
        await server.stopped()
        #expect(server.process.terminationStatus == 0, "the server survived the full disk: \(server.logs.suffix(1500))")
        #expect(server.logs.components(separatedBy: "cannot write the inference log").count == 2, "logged once: \(server.logs.suffix(2000))")
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        #expect(size <= 65536)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        for line in text.split(separator: "\n") { #expect((try? JSONParser.parse(Array(line.utf8))) != nil, "a whole line: \(line.prefix(80))") }
    }

    /// Rotation by size: every row is in exactly one file, each line whole, no file past the limit.
    @Test func rotationKeepsEveryLineOnce() async throws {
        let folder = try Paths.temporaryFolder("inference-rotation")
        let path = "\(folder)/inference.jsonl"
        let server = try Self.server(
            ["INFERENCE_LOG": path, "INFERENCE_LOG_MAX_MB": "1", "INFERENCE_LOG_KEEP": "5"], models: ["Echo": "\(Paths.fixtures)/models/Echo"])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync()
        var ids: [String] = []
        let pad = String(repeating: "y", count: 8 << 10)
        for row in 0..<150 {
            let answer = try await client.send(
                "POST", "/Echo", body: #"{"variables": {"row": \#(row), "pad": "\#(pad)"}}"#, headers: ["X-Request-ID": "row-\(row)"])
            #expect(answer.status == 200)
            ids.append("row-\(row)")
        }
        await server.stopped()
        let files = [path] + (1...5).map { "\(path).\($0)" }.filter { FileManager.default.fileExists(atPath: $0) }
        #expect(files.count >= 3, "about 2.5 MB in files of 1 MiB: \(files)")
        var seen: [String] = []
        for file in files {
            let size = (try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
            #expect(size <= 1 << 20, "\(file) has \(size) bytes")
            let text = try String(contentsOfFile: file, encoding: .utf8)
            #expect(text.hasSuffix("\n"))
            for line in text.split(separator: "\n") {
                let parsed = try JSONParser.parse(Array(line.utf8))
                seen.append(parsed["request_id"]?.string ?? "")
            }
        }
        #expect(seen.sorted() == ids.sorted(), "every row once")
    }

    @Test func aLogThatCannotBeOpenedStopsTheServerAtStart() throws {
        let run = try CommandLineTests.run(
            ["serve", "--port", "0"], environment: ["INFERENCE_LOG": "/nonexistent-folder/inference.jsonl", "MODELS_DIR": Paths.modelsServe])
        #expect(run.status == 78, "\(run.output)")
        #expect(run.output.contains("INFERENCE_LOG=/nonexistent-folder/inference.jsonl cannot be opened"), "\(run.output)")
        let sample = try CommandLineTests.run(["serve", "--port", "0"], environment: ["INFERENCE_LOG_SAMPLE": "1.5"])
        #expect(sample.status == 78)
        #expect(sample.output.contains("INFERENCE_LOG_SAMPLE"), "\(sample.output)")
    }

    @Test func aSampleOfZeroKeepsNoRow() async throws {
        let folder = try Paths.temporaryFolder("inference-sample")
        let path = "\(folder)/inference.jsonl"
        let server = try Self.server(["INFERENCE_LOG": path, "INFERENCE_LOG_SAMPLE": "0"], models: ["Echo": "\(Paths.fixtures)/models/Echo"])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync()
        for _ in 0..<20 { #expect(try await client.post("/Echo", #"{"variables": {}}"#).status == 200) }
        await server.stopped()
        #expect(Self.lines(path).isEmpty)
    }
}

/// A model folder with a reference sample (`model.yaml`: `drift`) gets live PSI and missing-ratio gauges in
/// `/metrics`, computed from its latest rows every few seconds; they move when the rows sent shift.
@Suite struct LiveDriftTests {
    static func gauge(_ metrics: String, _ name: String, feature: String) -> Double? {
        metrics.split(separator: "\n").first {
            $0.hasPrefix(#"\#(name){model="Drifty",feature="\#(feature)"}"#) || $0.hasPrefix(#"\#(name){feature="\#(feature)",model="Drifty"}"#)
        }
        .flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    @Test func theGaugesMoveWhenTheRowsShift() async throws {
        let models = try Paths.modelsFolder(["Drifty": "\(Paths.fixtures)/models/Drifty"])
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync()
        // Rows like the reference: stable.
        for index in 0..<50 {
            let row = #"{"variables": {"x": \#(Double((index * 37) % 100) + 0.5), "color": "\#(index % 2 == 0 ? "red" : "blue")"}}"#
            #expect(try await client.post("/Drifty", row).status == 200)
        }
        try await eventually("the gauges show the stable rows", timeout: .seconds(60)) {
            let metrics = try await client.get("/metrics").text
            guard let x = Self.gauge(metrics, "autoserve_feature_psi", feature: "x") else { return false }
            return x < 0.1 && Self.gauge(metrics, "autoserve_feature_missing_ratio", feature: "color") == 0
        }
        // The window (50 rows) fills with shifted rows that lack color.
        for index in 0..<50 {
            #expect(try await client.post("/Drifty", #"{"variables": {"x": \#(300 + index)}}"#).status == 200)
        }
        try await eventually("the gauges show the shift", timeout: .seconds(60)) {
            let metrics = try await client.get("/metrics").text
            guard let x = Self.gauge(metrics, "autoserve_feature_psi", feature: "x") else { return false }
            return x > 0.25 && Self.gauge(metrics, "autoserve_feature_missing_ratio", feature: "color") == 1
        }
    }

    @Test func aReferenceThatCannotBeReadFailsTheModelWithTheReason() async throws {
        let models = try Paths.modelsFolder(["Drifty": "\(Paths.fixtures)/models/Drifty"])
        try "{\"x\": 1}\nnot json\n".write(toFile: "\(models)/Drifty/reference.jsonl", atomically: true, encoding: .utf8)
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync()
        let index = try await client.get("/").json
        #expect(index?["Drifty"]?["state"] == .string("failed"))
        let message = index?["Drifty"]?["last_error"]?.jsonText ?? ""
        #expect(message.contains("drift.reference") && message.contains("Drifty/reference.jsonl:2"), "\(message)")
    }
}
