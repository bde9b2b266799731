import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A worker that stops reading its socket (hung with the socket full, or far behind) holds up only its own rows:
/// the event loops never wait for it, so health checks and the other models answer as usual, and its rows get
/// 503 (`model_overloaded`, once its queue is full) at once, and the rows it holds are answered when it reads again.
@Suite(.serialized)
struct StoppedWorkerTests {
    @Test func aWorkerThatStopsReadingHoldsUpOnlyItsOwnRows() async throws {
        let echo = "\(Paths.fixtures)/models/Echo"
        let models = try Paths.modelsFolder(["Stopped": echo, "Echo": echo])
        // Its rows would time out only after 10 minutes: no deadline fires while the checks below run, however loaded
        // the machine is, so the rows it holds can only end when the test lets the worker run again.
        try "timeout_ms: 600000\n".write(toFile: "\(models)/Stopped/model.yaml", atomically: true, encoding: .utf8)
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState])
        defer { server.stop() }
        let port = try await server.waitUntilListening()
        let client = HTTPClient(base: "http://127.0.0.1:\(port)")
        try await client.waitForTheFirstSync()
        let index = try await client.get("/").json
        guard case .array(let pids) = index?["Stopped"]?["workers"]?["pids"], case .number(let first) = pids.first else {
            Issue.record("no worker pid in the index: \(String(describing: index))")
            return
        }
        let pid = pid_t(first)
        #expect(kill(pid, SIGSTOP) == 0)

        // 40 rows of 64 KiB each on connections of their own: more than the worker's socket and its 1 MiB queue hold.
        let body = #"{"variables": {"pad": "\#(String(repeating: "x", count: 64 << 10))"}}"#
        let row = "POST /Stopped HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        let answers = Mutex<[HTTPAnswer]>([])
        for _ in 0..<40 {
            Thread.detachNewThread {
                let answer = (try? RawHTTP.exchangeNow(port: port, send: [row], expecting: 1, readTimeout: 600)) ?? []
                answers.withLock { $0.append(answer.first ?? HTTPAnswer(status: 0, headers: [:], body: Data())) }
            }
        }
        try await eventually("the stopped worker's queue is full and its next rows are refused", timeout: .seconds(60)) {
            answers.withLock { $0.contains { $0.status == 503 } }
        }
        let refused = try #require(answers.withLock { $0.first { $0.status == 503 } })
        #expect(refused.text.contains("model_overloaded"), "\(refused.text)")
        #expect(refused.text.contains("Stopped"))

        // Every loop keeps serving: each check is a new connection, and connections go round the loops.
        for check in 0..<20 {
            let health = try await RawHTTP.exchange(port: port, send: ["GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"], expecting: 1)
            #expect(health.first?.status == 200, "health check \(check)")
            let other = #"{"variables": {"x": \#(check)}}"#
            let scored = try await RawHTTP.exchange(
                port: port, send: ["POST /Echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(other.utf8.count)\r\n\r\n\(other)"], expecting: 1
            )
            #expect(scored.first?.status == 200, "Echo, check \(check): \(scored.first?.text ?? "no answer")")
        }
        // All of that happened while the stopped worker still held its rows.
        #expect(answers.withLock { $0.count } < 40, "the stopped worker's rows were answered while it was stopped")
        #expect(try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8).contains(") T "), "the worker is still stopped")

        // Once it runs again, it answers every row it held, and nothing was lost on the way.
        #expect(kill(pid, SIGCONT) == 0)
        try await eventually("every row of the stopped worker is answered", timeout: .seconds(120)) { answers.withLock { $0.count } == 40 }
        let statuses = answers.withLock { $0.map(\.status) }
        #expect(Set(statuses).isSubset(of: [200, 503]), "\(statuses)")
        #expect(statuses.contains(200), "the rows the worker held are answered")
        let echoed = answers.withLock { $0.filter { $0.status == 200 } }
        #expect(echoed.allSatisfy { $0.text.contains(String(repeating: "x", count: 64 << 10)) }, "each held row gets its own answer")
        #expect(try await client.post("/Stopped", #"{"variables": {"x": 1}}"#).status == 200)
    }
}
