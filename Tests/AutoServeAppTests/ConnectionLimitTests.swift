import AutoServeApp
import Foundation
import ServingCore
import Testing

/// Connections a hostile or careless client opens: a limit, and read and idle timeouts, so that health checks
/// and scoring keep answering.
@Suite(.serialized)
struct ConnectionLimitTests {
    /// 2,000 idle connections and 200 slowloris ones (a header byte every 200 ms): well-behaved clients keep
    /// getting answers meanwhile, and the server closes every attacker within its timeouts.
    @Test func idleAndSlowConnectionsCannotStarveTheServer() async throws {
        let models = try Paths.modelsFolder(["Echo": "\(Paths.fixtures)/models/Echo"])
        let server = try BinaryServer(environment: [
            "MODELS_DIR": models, "STATE_DIR": Paths.sharedState, "HEADER_TIMEOUT": "4s", "KEEPALIVE_TIMEOUT": "4s",
        ])
        defer { server.stop() }
        let port = try await server.waitUntilListening()
        let client = HTTPClient(base: "http://127.0.0.1:\(port)")
        try await client.waitForTheFirstSync()
        // The attackers live in a process of their own (see the script for why).
        let attack = Process()
        attack.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        attack.arguments = ["python3", "\(Paths.fixtures)/tools/hold_connections.py", "\(port)", "2000", "200"]
        let output = Pipe()
        attack.standardOutput = output
        try attack.run()
        defer { if attack.isRunning { attack.terminate() } }
        let lines = LineReader(output.fileHandleForReading)
        #expect(await lines.next() == "ready")
        var latencies: [Duration] = []
        for index in 0..<200 {
            let start = ContinuousClock.now
            let answer = index % 2 == 0 ? try await client.get("/healthz") : try await client.post("/Echo", #"{"variables": {"a": 1}}"#)
            latencies.append(ContinuousClock.now - start)
            #expect(answer.status == 200, "request \(index) during the attack: \(answer.status)")
        }
        latencies.sort()
        print("healthz and Echo under 2,000 idle + 200 slowloris connections: p50 \(latencies[100]), p99 \(latencies[197])")
        // Every attacker is closed within its timeout: idle ones without an answer, slow ones with a 408.
        let report = try JSONParser.parse(Array((await lines.next() ?? "").utf8))
        #expect(report["idle_closed_silently"] == .number(2000), "\(report)")
        #expect(report["slow_408"] == .number(200), "\(report)")
        let metrics = try await client.get("/metrics").text
        #expect(metrics.contains(#"autoserve_connections_timed_out_total{phase="header"}"#))
    }

    @Test func connectionsOverTheLimitAreRefusedAndCounted() async throws {
        let models = try Paths.modelsFolder(["Echo": "\(Paths.fixtures)/models/Echo"])
        let server = try BinaryServer(environment: [
            "MODELS_DIR": models, "STATE_DIR": Paths.sharedState, "MAX_CONNECTIONS": "8", "KEEPALIVE_TIMEOUT": "2s",
        ])
        defer { server.stop() }
        let port = try await server.waitUntilListening()
        try await HTTPClient(base: "http://127.0.0.1:\(port)").waitForTheFirstSync()
        // The waits above held connections that close after KEEPALIVE_TIMEOUT; hold every slot left, then one more.
        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        var refused: String?
        for _ in 0..<16 where refused == nil {
            let socket = try RawHTTP.connected(port: port)
            var readable = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            if poll(&readable, 1, 300) > 0 {
                refused = String(decoding: try await offThread { Self.readUntilClosed(socket) }, as: UTF8.self)
                close(socket)
            } else {
                held.append(socket)
            }
        }
        #expect(refused?.hasPrefix("HTTP/1.1 503 Service Unavailable") == true, "\(refused ?? "none refused")")
        #expect(refused?.contains("too_many_connections") == true)
        #expect(held.count <= 8)
        held.forEach { close($0) }
        held = []
        // The server frees the slots as it sees the closes: the scrape may wait for one.
        var metrics = ""
        var refusedScrapes = 0
        try await eventually("a slot is free for the scrape", timeout: .seconds(30)) {
            let answer = try await HTTPClient(base: "http://127.0.0.1:\(port)").get("/metrics")
            metrics = answer.text
            if answer.status == 503 { refusedScrapes += 1 }
            return answer.status == 200
        }
        // Every refusal is counted: the one above, and any scrape refused before a slot was free.
        #expect(
            metrics.contains("autoserve_connections_refused_total \(1 + refusedScrapes)\n"),
            "\(metrics.split(separator: "\n").filter { $0.contains("connections") })"
        )
        // A kept-alive connection left idle is closed after KEEPALIVE_TIMEOUT.
        let socket = try RawHTTP.connected(port: port)
        defer { close(socket) }
        let answer = try HTTP1DetailsTests.exchange(socket, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 200 OK"))
        #expect(try await offThread { Self.readUntilClosed(socket) }.isEmpty, "closed without another byte")
    }

    /// Reads until the server closes the connection (60 s at most, the sockets' receive timeout).
    static func readUntilClosed(_ socket: Int32) -> [UInt8] {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return received }
            received += buffer[0..<count]
        }
    }
}
