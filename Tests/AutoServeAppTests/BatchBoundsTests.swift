import Foundation
import ServingCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// docs/http-api.md's "HTTP API", the bounds of a batch: its answer is bounded in the server's memory (`MAX_ANSWER_BYTES`), its
/// rows reach the model a window at a time so that other clients' rows are interleaved, and a row's timeout counts
/// from when the worker runs it, so that rows waiting behind slow ones never make the model look hung.
@Suite(.serialized)
struct BatchBoundsTests {
    /// 1,200 rows of 5 MB answers each (6 GB if all were kept; a 5.5 GB peak once aborted a server with a memory
    /// limit, every model with it): the rows past `MAX_ANSWER_BYTES` get 413 `answer_too_large` without being scored,
    /// and the server's memory stays bounded.
    @Test func aBatchAnswerIsBoundedByMaxAnswerBytes() async throws {
        let models = try Paths.modelsFolder(["Huge": "\(Paths.fixtures)/models/Huge", "Iris": "\(Paths.modelsServe)/Iris"])
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync()
        let rows = "{\"rows\": [" + Array(repeating: #"{"megabytes": 5}"#, count: 1_200).joined(separator: ",") + "]}"
        let answer = try await client.post("/Huge", rows)
        #expect(answer.status == 200)
        guard case .array(let outputs)? = answer.json?["outputs"] else {
            Issue.record("no outputs: \(answer.text.prefix(300))")
            return
        }
        #expect(outputs.count == 1_200)
        let kept = outputs.prefix { $0["blob"] != nil }.count
        #expect(kept == 12, "64 MiB holds twelve 5 MiB outputs; row \(kept): \(outputs[kept].jsonText.prefix(300))")
        #expect(answer.body.count < 65 << 20)
        for output in outputs.dropFirst(kept) {
            #expect(output["_error"]?["status"] == 413 && output["_error"]?["code"] == "answer_too_large", "\(output.jsonText.prefix(200))")
        }
        #expect(outputs.last?["_error"]?["message"]?.string?.contains("MAX_ANSWER_BYTES") == true)
        let peak = try #require(UntrustedRepositoryTests.peakMemory(server.process.processIdentifier))
        #expect(peak < 1_500 << 20, "the server's resident memory peaked at \(peak >> 20) MB")
        #expect(try await client.post("/Iris", Rows.setosa).status == 200)
    }

    /// 2,000 rows of 200 ms each with a timeout of 5 s: no row of the batch times out (each is timed from when the
    /// worker runs it, not from when it was sent), no worker is killed, and another client's row sent meanwhile is
    /// answered while the batch still runs (it was queued behind a window of the batch's rows, not all of them).
    @Test func aSlowBatchTimesNoRowOutAndLetsOtherRowsThrough() async throws {
        let folder = try Paths.temporaryFolder("slow-batch")
        try FileManager.default.copyItem(atPath: "\(Paths.fixtures)/models/Slow/etls.swift", toPath: "\(folder)/etls.swift")
        try "timeout_ms: 5000\n".write(toFile: "\(folder)/model.yaml", atomically: true, encoding: .utf8)
        let marker = "\(try Paths.temporaryFolder("slow-batch-marker"))/running"
        // Slow's marker is written outside its folder, which the sandbox forbids.
        try await withTestServer(try await TestServer.start(models: ["Slow": folder]) { $0.modelSandbox = .off }) { server async throws in
            let client = server.client
            let rows = "{\"rows\": [" + (0..<2_000).map { _ in #"{"seconds": 0.2, "marker": "\#(marker)"}"# }.joined(separator: ",") + "]}"
            let finished = Flag()
            let batch = Task {
                defer { finished.set() }
                return try await client.post("/Slow", rows)
            }
            try await eventually("the batch's first row runs") { FileManager.default.fileExists(atPath: marker) }
            let other = try await client.post("/Slow", #"{"variables": {"seconds": 0.001}}"#)
            let batchDone = finished.isSet
            #expect(other.status == 200, "\(other.text)")
            #expect(!batchDone, "the other client's row was answered while the batch still ran")
            let answer = try await batch.value
            #expect(answer.status == 200)
            let outputs = answer.json?["outputs"]?.array ?? []
            #expect(outputs.count == 2_000)
            let failed = outputs.filter { $0["_error"] != nil }
            #expect(failed.isEmpty, "\(failed.count) rows failed, the first: \(failed.first?.jsonText ?? "")")
            let workers = try await client.get("/").json?["Slow"]?["workers"]
            #expect(workers?["restarts"] == 0, "no worker was killed: \(workers?.jsonText ?? "")")
        }
    }
}
