import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// No blocking call on an event loop, logs included (docs/operations.md, "Reliability"): a server whose standard error nobody
/// reads (a log driver or journald that fell behind) keeps answering while a model prints.
@Suite(.serialized)
struct StandardErrorTests {
    @Test func aServerWhoseOutputNobodyReadsKeepsAnsweringWhileAModelPrints() async throws {
        let models = try Paths.modelsFolder(["Printer": "\(Paths.fixtures)/models/Printer", "Echo": "\(Paths.fixtures)/models/Echo"])
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync()
        func slowestOf20() async throws -> Duration {
            var slowest: Duration = .zero
            for _ in 0..<20 {
                let started = ContinuousClock.now
                #expect(try await client.get("/healthz").status == 200)
                #expect(try await client.post("/Echo", #"{"variables": {"x": 1}}"#).status == 200)
                slowest = max(slowest, ContinuousClock.now - started)
            }
            return slowest
        }
        // The same machine's figure before the model prints: the test compares like with like, whatever the load.
        let before = try await slowestOf20()
        // From here nobody reads the server's output: the pipe fills as the model prints for 15 s.
        let printing = Task { try await client.post("/Printer", #"{"variables": {"mode": "loop", "seconds": 15}}"#) }
        let pipe = server.output.fileHandleForReading.fileDescriptor
        func waitingBytes() -> Int32 {
            var count: Int32 = 0
            _ = ioctl(pipe, UInt(FIONREAD), &count)
            return count
        }
        // A pipe holds 64 KiB, in pages: a writer blocks with somewhat less waiting.
        try await eventually("the server's output pipe is full", timeout: .seconds(60)) { waitingBytes() >= 48 << 10 }
        let during = try await slowestOf20()
        // A loop that blocks on the full pipe never answers again (nobody reads it in this test); one that does not
        // answers about as fast as before. The bound is loose, as CI's loaded machine doubles a slowest-of-20 at
        // random; the check that the pipe is still full proves nobody drained it in between.
        #expect(during < before * 3 + .seconds(5), "a health check and a row took \(during) with the output pipe full, \(before) before")
        #expect(waitingBytes() >= 48 << 10, "the pipe stayed full while the server answered")
        #expect(try await printing.value.status == 200)
        let metrics = try await client.get("/metrics").text
        #expect(metrics.contains("autoserve_model_output_dropped_lines_total{model=\"Printer\"}"))
    }
}
