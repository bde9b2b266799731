import Foundation
import ServingCore
import Synchronization
import Testing

/// Scoring requests are answered in the connection's pipeline (`ScoringChannelHandler`), everything else by
/// Hummingbird: both must give the same answers, in the order of the requests, on one connection.
@Suite(.serialized)
struct ScoringPathTests {
    static let server = Task {
        try await TestServer.start(models: [
            "Iris": "\(Paths.modelsServe)/Iris",
            "Echo": "\(Paths.fixtures)/models/Echo",
            "Unruly": "\(Paths.fixtures)/models/Unruly",
        ]) { configuration in
            configuration.maxBodyBytes = 4096
        }
    }

    static func post(_ path: String, _ body: String, headers: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    static let healthz = "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"

    @Test func pipelinedRequestsAreAnsweredInOrderWhicheverPathAnswersThem() async throws {
        let server = try await Self.server.value
        // A slow row first: the requests behind it wait for it, including the ones Hummingbird answers.
        let requests = [
            Self.post("/Unruly", #"{"variables": {"mode": "sleep"}}"#),
            Self.healthz,
            Self.post("/Iris", Rows.setosa),
            Self.post("/Echo", #"{"variables": {"n": 1}}"#),
            Self.healthz,
            Self.post("/Echo", #"{"variables": {"n": 2}}"#),
            Self.post("/Nope", "{}"),
            "GET /Echo HTTP/1.1\r\nHost: test\r\n\r\n",
            Self.post("/Iris", #"{"variables": {}}"#),
        ]
        let answers = try await RawHTTP.exchange(port: server.port, send: [requests.joined()], expecting: requests.count)
        #expect(answers.map(\.status) == [200, 200, 200, 200, 200, 200, 404, 200, 400])
        #expect(answers[0].json?["slept"] == .bool(true))
        #expect(answers[1].json?["status"] == .string("ok"))
        #expect(answers[2].json?["iris_class"] == .string("setosa"))
        #expect(answers[3].json?["echo"]?["n"] == .number(1))
        #expect(answers[5].json?["echo"]?["n"] == .number(2))
        #expect(answers[6].error("code") == .string("not_found"))
        #expect(answers[7].json?["echo"] == .object([:]))
        #expect(answers[8].error("message")?.jsonText.contains("sepal_length") == true)
    }

    /// `Connection: close` sends a request through Hummingbird's responder: the same row must get the same
    /// status, headers and body there as in the pipeline.
    @Test(arguments: [
        ("/Iris", Rows.setosa),
        ("/Iris", #"{"variables": {"sepal_length": 5.1}}"#),
        ("/Iris", #"{"variables": "no"}"#),
        ("/Iris", "not json"),
        ("/Echo", #"{"variables": {"mode": "reject"}}"#),
        ("/Echo", #"{"variables": {"mode": "explode"}}"#),
        ("/Echo?x=1", #"{"variables": {"a": [1, 2]}}"#),
        ("/Missing", "{}"),
        ("/all", #"{"variables": {"mode": "reject", "sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}"#),
        ("/Echo", "{\"variables\": {}}" + String(repeating: " ", count: 5000)),
    ])
    func bothPathsGiveTheSameAnswer(path: String, body: String) async throws {
        let server = try await Self.server.value
        // The same X-Request-ID on both: each path answers with it.
        let id = "X-Request-ID: same-\(UUID().uuidString)\r\n"
        let pipeline = try await RawHTTP.exchange(port: server.port, send: [Self.post(path, body, headers: id)], expecting: 1)[0]
        let responder = try await RawHTTP.exchange(port: server.port, send: [Self.post(path, body, headers: id + "Connection: close\r\n")], expecting: 1)[0]
        #expect(pipeline.status == responder.status)
        #expect(pipeline.text == responder.text)
        var pipelineHeaders = pipeline.headers
        var responderHeaders = responder.headers
        for name in ["date", "connection"] {
            pipelineHeaders[name] = nil
            responderHeaders[name] = nil
        }
        #expect(pipelineHeaders == responderHeaders)
        #expect(pipeline.header("date") != nil)
        #expect(pipeline.header("server") == "autoserve")
    }

    @Test func chunkedBodiesAreReadWholeAndLimitedWhileTheyArrive() async throws {
        let server = try await Self.server.value
        let row = Array(Rows.setosa.utf8)
        let head = "POST /Iris HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        // The row in three chunks, each in its own write.
        let pieces = [row[..<10], row[10..<40], row[40...]].map { "\(String($0.count, radix: 16))\r\n\(String(decoding: $0, as: UTF8.self))\r\n" }
        let answers = try await RawHTTP.exchange(port: server.port, send: [head] + pieces + ["0\r\n\r\n"], expecting: 1)
        #expect(answers[0].status == 200)
        #expect(answers[0].json?["iris_class"] == .string("setosa"))
        // Over the limit (4096 bytes) in chunks: 413, and the connection goes on serving.
        let chunk = String(repeating: " ", count: 1000)
        let large = head + String(repeating: "3e8\r\n\(chunk)\r\n", count: 5) + "0\r\n\r\n" + Self.post("/Iris", Rows.setosa)
        let after = try await RawHTTP.exchange(port: server.port, send: [large], expecting: 2)
        #expect(after[0].status == 413)
        #expect(after[0].error("code") == .string("payload_too_large"))
        #expect(after[1].status == 200)
    }

    /// In-process models run on the model pool, never on an event loop: while slow rows keep every loop's
    /// connections busy, health checks and the index still answer at once.
    @Test func slowInProcessModelsNeverHoldUpTheEventLoops() async throws {
        // The rows' own timeout is a minute: they end when the test says, however slow the machine.
        let models = try Paths.modelsFolder(["Unruly": "\(Paths.fixtures)/models/Unruly"])
        try "timeout_ms: 60000\nexamples:\n  - variables: {}\n    expect: {ok: true}\n".write(
            toFile: "\(models)/Unruly/model.yaml", atomically: true, encoding: .utf8)
        try await withTestServer(
            try await TestServer.start(models: [:]) { configuration in
                configuration.modelsDir = models
                configuration.modelIsolation = .inprocess
            }
        ) { server async throws in
            // One slow row per core, each on its own connection: the connections land on every event loop.
            let markers = try Paths.temporaryFolder("inprocess-markers")
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let answered = Tally()
            let slow = (0..<cores).map { index in
                Task {
                    let body = #"{"variables": {"mode": "sleep", "marker": "\#(markers)/\#(index)", "release": "\#(markers)/release"}}"#
                    defer { answered.add() }
                    return try await RawHTTP.exchange(port: server.port, send: [Self.post("/Unruly", body)], expecting: 1)
                }
            }
            try await eventually("every slow row is in the model", timeout: .seconds(60)) {
                (try? FileManager.default.contentsOfDirectory(atPath: markers).count) == cores
            }
            for _ in 0..<4 {
                let health = try await RawHTTP.exchange(port: server.port, send: [Self.healthz], expecting: 1)[0]
                #expect(health.status == 200)
            }
            #expect(answered.count == 0, "a health check waited for a model")
            #expect(FileManager.default.createFile(atPath: "\(markers)/release", contents: nil))
            for request in slow { #expect(try await request.value[0].json?["slept"] == .bool(true)) }
        }
    }

    /// SIGTERM lets the row in flight finish: the client gets its answer, then the server exits 0.
    @Test func sigtermAnswersTheRowInFlightBeforeExiting() async throws {
        let server = try BinaryServer(environment: [
            "STATE_DIR": Paths.sharedState, "MODELS_DIR": try Paths.modelsFolder(["Unruly": "\(Paths.fixtures)/models/Unruly"]),
            // The row's marker is written outside the model's folder, which the sandbox forbids.
            "MODEL_SANDBOX": "off",
        ])
        let port = try await server.waitUntilListening()
        let client = HTTPClient(base: "http://127.0.0.1:\(port)")
        try await eventually("Unruly is ready") { (try? await client.get("/readyz"))?.status == 200 }
        let markers = try Paths.temporaryFolder("sigterm-markers")
        let body = #"{"variables": {"mode": "sleep", "marker": "\#(markers)/row"}}"#
        let slow = Task { try await RawHTTP.exchange(port: port, send: [Self.post("/Unruly", body)], expecting: 1) }
        try await eventually("the row is in the model", timeout: .seconds(60)) { FileManager.default.fileExists(atPath: "\(markers)/row") }
        server.process.terminate()
        let answer = try await slow.value[0]
        #expect(answer.status == 200)
        #expect(answer.json?["slept"] == .bool(true))
        await server.stopped()
        #expect(server.process.terminationReason == .exit)
        #expect(server.process.terminationStatus == 0)
    }
}

/// HTTP/1.1 by hand over one TCP connection, for what URLSession does not do: pipelining, chunked bodies
/// in pieces. The blocking socket calls run on a thread of their own.
enum RawHTTP {
    static func exchange(port: Int, send writes: [String], expecting count: Int) async throws -> [HTTPAnswer] {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try exchangeNow(port: port, send: writes, expecting: count) })
            }
        }
    }

    /// A blocking TCP connection to 127.0.0.1:`port`, with a read timeout (60 s unless told); the caller closes it.
    static func connected(port: Int, readTimeout: Int = 60) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("no socket") }
        var timeout = timeval(tv_sec: readTimeout, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw TestFailure("cannot connect to port \(port)")
        }
        return descriptor
    }

    static func exchangeNow(port: Int, send writes: [String], expecting count: Int, readTimeout: Int = 60) throws -> [HTTPAnswer] {
        let descriptor = try connected(port: port, readTimeout: readTimeout)
        defer { close(descriptor) }
        for text in writes {
            let bytes = Array(text.utf8)
            var offset = 0
            while offset < bytes.count {
                let sent = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard sent > 0 else { throw TestFailure("the server closed the connection while we sent") }
                offset += sent
            }
            usleep(20_000)
        }
        var buffer: [UInt8] = []
        var answers: [HTTPAnswer] = []
        while answers.count < count {
            if let (answer, used) = parse(buffer) {
                answers.append(answer)
                buffer.removeFirst(used)
                continue
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let got = recv(descriptor, &chunk, chunk.count, 0)
            guard got > 0 else { throw TestFailure("the connection ended after \(answers.count) of \(count) answers") }
            buffer.append(contentsOf: chunk[..<got])
        }
        return answers
    }

    /// One whole response at the start of `bytes` (a `Content-Length` body) and how many bytes it took.
    static func parse(_ bytes: [UInt8]) -> (HTTPAnswer, Int)? {
        let separator = Array("\r\n\r\n".utf8)
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { Array(bytes[$0..<($0 + 4)]) == separator }) else { return nil }
        let lines = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        guard let status = lines.first?.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        guard bytes.count >= end + 4 + length else { return nil }
        let body = Data(bytes[(end + 4)..<(end + 4 + length)])
        return (HTTPAnswer(status: status, headers: headers, body: body), end + 4 + length)
    }
}
