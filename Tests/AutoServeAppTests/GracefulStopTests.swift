import AutoServeApp
import Foundation
import ServingCore
import Testing

/// SIGTERM: every request the server holds is answered (the last answer of a connection says `Connection:
/// close`), and `SHUTDOWN_TIMEOUT` bounds the whole stop.
@Suite(.serialized)
struct GracefulStopTests {
    /// SIGTERM to the server alone, and to its whole process group (a terminal's Ctrl-C, systemd's
    /// `KillMode=control-group`, `tini -g`): the workers ignore it, and the stop is the same.
    @Test(arguments: [false, true])
    func requestsHeldOnKeepAliveConnectionsAreAnsweredOnSigterm(toTheGroup: Bool) async throws {
        let models = try Paths.modelsFolder(["Slow": "\(Paths.fixtures)/models/Slow"])
        let markers = try Paths.temporaryFolder("stop-markers")
        // A process group of its own (the server's pid), so that a signal to the group spares the test.
        let server = try BinaryServer(
            // Slow's markers are written outside its folder, which the sandbox forbids.
            environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState, "MODEL_SANDBOX": "off"],
            launcher: ["/usr/bin/perl", "-e", "setpgrp(0, 0); exec @ARGV"])
        let port = try await server.waitUntilListening()
        try await HTTPClient(base: "http://127.0.0.1:\(port)").waitForTheFirstSync()
        let sockets = try (0..<20).map { _ in try RawHTTP.connected(port: port) }
        defer { sockets.forEach { close($0) } }
        for (index, socket) in sockets.enumerated() {
            let body = #"{"variables": {"seconds": 120, "marker": "\#(markers)/\#(index)", "release": "\#(markers)/release"}}"#
            let request = Array("POST /Slow HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
            _ = request.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        try await eventually("the model holds all 20 rows", timeout: .seconds(60)) {
            (try? FileManager.default.contentsOfDirectory(atPath: markers).count) == 20
        }
        let pid = server.process.processIdentifier
        try #require(getpgid(pid) == pid && getpgid(pid) != getpgrp())
        kill(toTheGroup ? -pid : pid, SIGTERM)
        // The rows end only once the stop has begun (the server no longer accepts), however slow the machine.
        try await eventually("the server stops accepting", timeout: .seconds(60)) { (try? RawHTTP.connected(port: port)).map { close($0) } == nil }
        #expect(FileManager.default.createFile(atPath: "\(markers)/release", contents: nil))
        for (index, socket) in sockets.enumerated() {
            let text = String(decoding: try await offThread { ConnectionLimitTests.readUntilClosed(socket) }, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200 OK"), "connection \(index): \(text.prefix(120).debugDescription)")
            #expect(text.lowercased().contains("connection: close"), "connection \(index): \(text.prefix(300).debugDescription)")
        }
        _ = try await offThread { server.process.waitUntilExit() }
        #expect(server.process.terminationStatus == 0)
        await server.stopped()
        #expect(!server.logs.contains("worker exited"), "no worker died under the stop: \(server.logs.suffix(1500))")
        #expect(server.logs.contains("stopped: every request received was answered"), "\(server.logs.suffix(1500))")
    }

    /// A stop leaves nothing in `TMPDIR`: each worker's temporary folder is removed, though the workers, stopped
    /// last, are reaped only after the server's last log line.
    @Test func aStopRemovesTheWorkersTemporaryFolders() async throws {
        let models = try Paths.modelsFolder(["Echo": "\(Paths.fixtures)/models/Echo", "Iris": "\(Paths.modelsServe)/Iris"])
        let temporary = try Paths.temporaryFolder("stop-tmpdir")
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState, "TMPDIR": temporary])
        let port = try await server.waitUntilListening()
        try await HTTPClient(base: "http://127.0.0.1:\(port)").waitForTheFirstSync()
        #expect(try Paths.workerFolders(in: temporary).count >= 2, "a folder per worker while they serve")
        await server.stopped()
        #expect(server.process.terminationStatus == 0, "\(server.logs.suffix(1500))")
        #expect(try Paths.workerFolders(in: temporary) == [])
    }

    /// With `SHUTDOWN_DELAY`, a stop first drains: `/readyz` says `draining` at once, an idle kept-alive
    /// connection is closed, and new connections are still accepted and answered (each answer closing its
    /// connection) until the delay ends; then the server stops accepting and exits 0.
    @Test func aStopWithShutdownDelayDrainsBeforeItStopsAccepting() async throws {
        let models = try Paths.modelsFolder(["Echo": "\(Paths.fixtures)/models/Echo"])
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState, "SHUTDOWN_DELAY": "20s"])
        let port = try await server.waitUntilListening()
        try await HTTPClient(base: "http://127.0.0.1:\(port)").waitForTheFirstSync()
        let idle = try RawHTTP.connected(port: port)
        defer { close(idle) }
        #expect(try HTTP1DetailsTests.exchange(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("HTTP/1.1 200"))

        kill(server.process.processIdentifier, SIGTERM)
        var readiness = ""
        try await eventually("/readyz says draining", timeout: .seconds(30)) {
            readiness = try await RawHTTP.exchange(port: port, send: ["GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"], expecting: 1).first?.text ?? ""
            return readiness.contains("draining")
        }
        #expect(readiness.contains(#""status":503"#), "\(readiness)")
        #expect(
            String(decoding: try await offThread { ConnectionLimitTests.readUntilClosed(idle) }, as: UTF8.self).isEmpty,
            "the idle connection is closed, with nothing sent")
        // Still serving, through either path: a scoring request and a route of Hummingbird's.
        let row = #"{"variables": {"a": 1}}"#
        for request in ["POST /Echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(row.utf8.count)\r\n\r\n\(row)", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"] {
            let socket = try RawHTTP.connected(port: port)
            defer { close(socket) }
            _ = Array(request.utf8).withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            let answer = String(decoding: try await offThread { ConnectionLimitTests.readUntilClosed(socket) }, as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(200).debugDescription)")
            #expect(answer.lowercased().contains("connection: close"), "\(answer.prefix(300).debugDescription)")
        }
        #expect(server.process.isRunning, "the delay is not over")
        // Then the stop: the port refuses, and the server exits 0.
        try await eventually("the server stops accepting", timeout: .seconds(60)) { (try? RawHTTP.connected(port: port)).map { close($0) } == nil }
        _ = try await offThread { server.process.waitUntilExit() }
        #expect(server.process.terminationStatus == 0)
    }

    @Test func aShutdownDelayAsLongAsTheTimeoutIsRefused() throws {
        let run = try CommandLineTests.run(["serve", "--port", "0"], environment: ["SHUTDOWN_DELAY": "30s", "SHUTDOWN_TIMEOUT": "30s"])
        #expect(run.status == 78, "\(run.output)")
        #expect(run.output.contains("SHUTDOWN_DELAY (30.0 s) must be shorter than SHUTDOWN_TIMEOUT"), "\(run.output)")
    }

    @Test func shutdownTimeoutBoundsAStuckStop() async throws {
        let models = try Paths.modelsFolder(["Slow": "\(Paths.fixtures)/models/Slow"])
        let markers = try Paths.temporaryFolder("stuck-markers")
        // Slow's markers are written outside its folder, which the sandbox forbids.
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState, "SHUTDOWN_TIMEOUT": "1s", "MODEL_SANDBOX": "off"])
        let port = try await server.waitUntilListening()
        try await HTTPClient(base: "http://127.0.0.1:\(port)").waitForTheFirstSync()
        let socket = try RawHTTP.connected(port: port)
        defer { close(socket) }
        let body = #"{"variables": {"seconds": 50, "marker": "\#(markers)/stuck"}}"#
        let request = Array("POST /Slow HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
        _ = request.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        try await eventually("the model holds the row", timeout: .seconds(60)) { FileManager.default.fileExists(atPath: "\(markers)/stuck") }
        kill(server.process.processIdentifier, SIGTERM)
        let text = String(decoding: try await offThread { ConnectionLimitTests.readUntilClosed(socket) }, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 503 "), "\(text.prefix(300).debugDescription)")
        #expect(text.contains("SHUTDOWN_TIMEOUT"))
        await server.stopped()
        #expect(server.process.terminationStatus == 1, "a stop cut short exits 1")
        #expect(server.logs.contains("the stop took longer than SHUTDOWN_TIMEOUT"))
    }
}
