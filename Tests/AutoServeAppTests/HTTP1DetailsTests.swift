import AutoServeApp
import Foundation
import ServingCore
import Testing

/// HTTP/1.0 clients and `Expect: 100-continue`, byte for byte over raw sockets.
@Suite(.serialized)
struct HTTP1DetailsTests {
    @Test func http10IsAnsweredAs10AndClosedUnlessItAskedForKeepAlive() async throws {
        try await withTestServer(try await TestServer.start(models: ["Echo": "\(Paths.fixtures)/models/Echo"])) { server async throws in
            for request in ["GET /healthz HTTP/1.0\r\n\r\n", "POST /Echo HTTP/1.0\r\nContent-Length: 17\r\n\r\n{\"variables\": {}}"] {
                // Read to the end: it returns only because the server closes the connection.
                let text = String(decoding: try await offThread { try RawHTTP.readToEnd(port: server.port, request: Array(request.utf8)) }, as: UTF8.self)
                #expect(text.hasPrefix("HTTP/1.0 200 OK"), "\(text)")
                #expect(text.lowercased().contains("connection: close"), "\(text)")
            }
            let socket = try RawHTTP.connected(port: server.port)
            defer { close(socket) }
            for _ in 0..<2 {
                let text = try await offThread { try Self.exchange(socket, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") }
                #expect(text.hasPrefix("HTTP/1.0 200 OK"), "\(text)")
                #expect(text.lowercased().contains("connection: keep-alive"), "the connection stays open: \(text)")
            }
        }
    }

    @Test func expect100ContinueGetsContinueOr417() async throws {
        try await withTestServer(try await TestServer.start(models: ["Echo": "\(Paths.fixtures)/models/Echo"])) { server async throws in
            let body = #"{"variables": {"a": 1}}"#
            for path in ["/Echo", "/all"] {
                let socket = try RawHTTP.connected(port: server.port)
                defer { close(socket) }
                let interim = try await offThread {
                    try Self.exchange(socket, "POST \(path) HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
                }
                #expect(interim == "HTTP/1.1 100 Continue\r\n\r\n", "\(interim)")
                let answer = try await offThread { try Self.exchange(socket, body) }
                #expect(answer.hasPrefix("HTTP/1.1 200 OK"), "\(answer)")
                #expect(answer.contains(#""a":1"#))
            }
            let tooLarge = String(
                decoding: try await offThread {
                    try RawHTTP.readToEnd(
                        port: server.port, request: Array("POST /Echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n".utf8))
                }, as: UTF8.self)
            #expect(tooLarge.hasPrefix("HTTP/1.1 417 "), "\(tooLarge)")
            #expect(tooLarge.contains("MAX_BODY_BYTES"))
            let unknown = String(
                decoding: try await offThread {
                    try RawHTTP.readToEnd(
                        port: server.port, request: Array("POST /Echo HTTP/1.1\r\nExpect: teapot\r\nX-Request-ID: tea-1\r\nContent-Length: 2\r\n\r\n{}".utf8))
                }, as: UTF8.self)
            #expect(unknown.hasPrefix("HTTP/1.1 417 "), "\(unknown)")
            // Every answer carries X-Request-ID (docs/operations.md, "The inference log"), a refused expectation's too: the client's own.
            #expect(unknown.lowercased().contains("x-request-id: tea-1"), "\(unknown)")
            #expect(tooLarge.lowercased().contains("x-request-id: "), "\(tooLarge)")
            // An empty `Expect:` (what URLSession sends to turn libcurl's off) expects nothing: an ordinary request.
            let socket = try RawHTTP.connected(port: server.port)
            defer { close(socket) }
            let empty = try await offThread {
                try Self.exchange(socket, "POST /Echo HTTP/1.1\r\nHost: x\r\nExpect: \r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            }
            #expect(empty.hasPrefix("HTTP/1.1 200 OK"), "\(empty)")
        }
    }

    /// Sends `text` and returns what arrives next: one answer, read until the bytes stop for a moment.
    static func exchange(_ socket: Int32, _ text: String) throws -> String {
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
            throw TestFailure("the server closed the connection")
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var readable = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        // The first bytes within 30 s, then whatever follows within 200 ms of the last.
        var wait: Int32 = 30_000
        while poll(&readable, 1, wait) > 0 {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            received += buffer[0..<count]
            wait = 200
        }
        return String(decoding: received, as: UTF8.self)
    }
}
