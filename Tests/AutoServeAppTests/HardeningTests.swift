import AutoServeApp
import Foundation
import ServingCore
import Testing

/// What a hostile client or a hostile models repository can do to the server, each through the real server
/// (README, "Reliability"): the server answers, keeps serving the models that work, and gives nothing away.
@Suite(.serialized)
struct HardeningTests {
    static let adminToken = "admin-token-hardening-3b1"

    @Test func stringsEndingInABackslashAreRefusedAndTheServerKeepsAnswering() async throws {
        try await withTestServer(try await TestServer.start(models: ["Echo": "\(Paths.fixtures)/models/Echo"])) { server async throws in
            // Twice: each of these once left an event loop spinning for ever.
            for body in ["\"\\", "\"\\", "{\"variables\": {\"a\": \"\\u12", "{\"variables\": {\"a\": \"\\"] {
                let answer = try await server.client.post("/Echo", body)
                #expect(answer.status == 400, "\(body.debugDescription)")
                #expect(answer.error("code") == .string("invalid_json"))
            }
            #expect(try await server.client.get("/healthz").status == 200)
            #expect(try await server.client.post("/Echo", #"{"variables": {"a": 1}}"#).status == 200)
        }
    }

    @Test func malformedBodiesAreNamedForWhatTheyAre() async throws {
        try await withTestServer(try await TestServer.start(models: ["Echo": "\(Paths.fixtures)/models/Echo"])) { server async throws in
            let huge = try await server.client.post("/Echo", #"{"variables": {"a": 1e400}}"#)
            #expect(huge.status == 400)
            #expect(huge.error("message")?.jsonText.contains("beyond the range of a double") == true, "\(huge.text)")
            let latin1 = try await server.client.send(
                "POST", "/Echo", data: Data([0x7B, 0x22, 0x76] + Array(#"ariables": {"name": ""#.utf8) + [0xE9] + Array(#""}}"#.utf8)))
            #expect(latin1.status == 400)
            #expect(latin1.error("message")?.jsonText.contains("not valid UTF-8") == true, "\(latin1.text)")
            // One rule for a repeated key, at the top level and inside the variables: the first one counts.
            let repeated = try await server.client.post("/Echo", #"{"variables": {"a": 1, "a": 2}, "variables": {"a": 3}}"#)
            #expect(repeated.json?["echo"]?["a"] == .number(1), "\(repeated.text)")
            let escaped = try await server.client.post("/Echo", #"{"\u0076ariables": {"a": 4}}"#)
            #expect(escaped.json?["echo"]?["a"] == .number(4), "\(escaped.text)")
        }
    }

    /// Requests the HTTP decoder cannot parse get the JSON error body, then the connection closes.
    @Test func framingErrorsAnswerWithTheJSONErrorBody() async throws {
        try await withTestServer(try await TestServer.start(models: ["Echo": "\(Paths.fixtures)/models/Echo"])) { server async throws in
            for request in [
                "GARBAGE / HTTP/1.1\r\n\r\n", "POST /Echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                "POST /Echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            ] {
                let text = String(decoding: try await offThread { try RawHTTP.readToEnd(port: server.port, request: Array(request.utf8)) }, as: UTF8.self)
                #expect(text.hasPrefix("HTTP/1.1 400 "), "\(text)")
                #expect(text.lowercased().contains("connection: close"))
                #expect(text.lowercased().contains("x-request-id: "), "an unreadable request gets an id of the server's: \(text)")
                let body = text.components(separatedBy: "\r\n\r\n").last ?? ""
                #expect((try? JSONParser.parse(Array(body.utf8)))?["error"]?["code"] == .string("invalid_http"), "\(text)")
            }
        }
    }

    /// 2,000 made-up model names: one label value for all of them, and `/metrics` stays small.
    @Test func unknownModelNamesNeverBecomeMetricLabels() async throws {
        try await withTestServer(try await TestServer.start(models: ["Echo": "\(Paths.fixtures)/models/Echo"])) { server async throws in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        for index in 0..<250 {
                            let answer = try await server.client.post("/made-up-\(worker)-\(index)-\(UUID().uuidString.prefix(8))", "{}")
                            #expect(answer.status == 404)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let metrics = try await server.client.get("/metrics").text
            #expect(!metrics.contains("made-up-"))
            #expect(metrics.contains(#"autoserve_requests_total{model="_unknown",status="404",version=""} 2000"#))
            #expect(metrics.utf8.count < 64 << 10, "/metrics is \(metrics.utf8.count) bytes")
        }
    }

    /// Clients keep opening connections and sending 200 KB rows while the model's worker traps on some of
    /// them: the worker's socket is closed while rows may still be written to it, and the kernel gives its
    /// number to the next client connection it accepts. Every client must get an HTTP answer that carries its
    /// own marker and nobody else's, never a worker frame with another client's row.
    @Test func aDyingWorkerNeverSendsOneClientsRowToAnother() async throws {
        try await withTestServer(try await TestServer.start(models: ["TrapOrEcho": "\(Paths.fixtures)/models/TrapOrEcho"])) { server async throws in
            let padding = String(repeating: "p", count: 200_000)
            let clients = 48
            let requestsPerClient = 12
            let answers = await withTaskGroup(of: [(String, [UInt8])].self) { group in
                for client in 0..<clients {
                    group.addTask {
                        var answers: [(String, [UInt8])] = []
                        for request in 0..<requestsPerClient {
                            let marker = "client-\(client)-\(request)-marker"
                            let trap = (client * requestsPerClient + request) % 97 == 0
                            let body = #"{"variables": {"marker": "\#(marker)", "trap": \#(trap), "padding": "\#(padding)"}}"#
                            answers.append((marker, await RawHTTP.exchange(port: server.port, path: "/TrapOrEcho", body: Array(body.utf8))))
                        }
                        return answers
                    }
                }
                var all: [(String, [UInt8])] = []
                for await some in group { all += some }
                return all
            }
            #expect(answers.count == clients * requestsPerClient)
            var foreign = 0
            for (marker, bytes) in answers {
                let text = String(decoding: bytes, as: UTF8.self)
                #expect(text.hasPrefix("HTTP/1.1 "), "\(marker) got no HTTP answer: \(text.prefix(80).debugDescription)")
                let markers = text.ranges(of: "-marker").count
                let own = text.contains(marker)
                if markers != (own ? 1 : 0) || text.contains("ppppppppppppppppppp") { foreign += 1 }
                if text.hasPrefix("HTTP/1.1 200") { #expect(own, "\(marker) was answered with another row: \(text.prefix(200).debugDescription)") }
            }
            #expect(foreign == 0, "\(foreign) clients received another client's bytes")
            #expect(try await server.client.get("/healthz").status == 200)
        }
    }

    /// A worker that starts fine and dies on its rows again and again is restarted ever later (0.1 s, 0.2 s,
    /// 0.4 s …), not ten times a second.
    @Test func theRestartBackoffGrowsWithRepeatedCrashes() async throws {
        let models = try Paths.modelsFolder(["TrapOrEcho": "\(Paths.fixtures)/models/TrapOrEcho"])
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        for _ in 0..<3 {
            try await eventually("the worker is back", timeout: .seconds(60)) {
                try await client.post("/TrapOrEcho", #"{"variables": {"marker": "x"}}"#).status == 200
            }
            #expect(try await client.post("/TrapOrEcho", #"{"variables": {"trap": true}}"#).status == 503)
        }
        try await eventually("the worker is back", timeout: .seconds(60)) {
            try await client.post("/TrapOrEcho", #"{"variables": {"marker": "x"}}"#).status == 200
        }
        await server.stopped()
        let delays = server.logs.components(separatedBy: "restart_in_seconds=").dropFirst().map { $0.prefix { $0 != " " && $0 != "\n" } }
        #expect(delays == ["0.1", "0.2", "0.4"], "\(delays)")
    }

    /// A client that pipelines rows and never reads the answers: the server stops reading it once its unsent
    /// answers pass NIO's high-water mark, so its memory stays flat (before: +167 MB).
    @Test(arguments: ["process", "inprocess"])
    func aClientThatNeverReadsCostsABoundedBuffer(isolation: String) async throws {
        let models = try Paths.modelsFolder(["Echo": "\(Paths.fixtures)/models/Echo"])
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState, "MODEL_ISOLATION": isolation])
        defer { server.stop() }
        let port = try await server.waitUntilListening()
        try await HTTPClient(base: "http://127.0.0.1:\(port)").waitForTheFirstSync()
        func residentMB() -> Int {
            let status = (try? String(contentsOfFile: "/proc/\(server.process.processIdentifier)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) / 1024
        }
        let before = residentMB()
        let request = Array("POST /Echo HTTP/1.1\r\nHost: x\r\nContent-Length: 45\r\n\r\n{\"variables\": {\"padding\": \"0123456789abcde\"}}".utf8)
        let socket = try RawHTTP.connected(port: port)
        defer { close(socket) }
        _ = fcntl(socket, F_SETFL, fcntl(socket, F_GETFL) | O_NONBLOCK)
        // Up to 40 MB of rows, until the server has stopped reading for a second.
        let batch = Array([[UInt8]](repeating: request, count: 1000).joined())
        var sent = 0
        var writable = pollfd(fd: socket, events: Int16(POLLOUT), revents: 0)
        while sent < 40 << 20, poll(&writable, 1, 1000) > 0 {
            let count = batch.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count > 0 { sent += count } else if errno != EAGAIN { break }
        }
        let after = residentMB()
        #expect(sent < 40 << 20, "the server read every row of a client that reads nothing (\(sent >> 20) MB)")
        #expect(after - before < 32, "the server grew from \(before) MB to \(after) MB after \(sent >> 10) KB of rows")
        #expect(try await HTTPClient(base: "http://127.0.0.1:\(port)").get("/healthz").status == 200)
    }

    /// An output larger than a worker frame is a 500 that says so, not a worker "crash"; the worker lives on.
    @Test func anOutputTooLargeForAFrameIsAModelError() async throws {
        try await withTestServer(try await TestServer.start(models: ["Huge": "\(Paths.fixtures)/models/Huge"])) { server async throws in
            let pids = try await server.client.get("/").json?["Huge"]?["workers"]?["pids"]
            let answer = try await server.client.post("/Huge", #"{"variables": {"megabytes": 70}}"#)
            #expect(answer.status == 500)
            #expect(answer.error("code") == .string("model_error"))
            #expect(answer.error("message")?.jsonText.contains("more than the 67108855 a worker can send back") == true, "\(answer.text.prefix(300))")
            #expect(try await server.client.get("/").json?["Huge"]?["workers"]?["pids"] == pids, "the worker was not restarted")
            #expect(try await server.client.post("/Huge", #"{"variables": {"megabytes": 1}}"#).status == 200)
        }
    }

    /// A tree made with `git hash-object --literally` whose entry is named `../../…`: git's object format
    /// allows it. The version fails with a diagnostic, nothing is written outside STATE_DIR, Echo serves.
    @Test func aTreeEntryThatClimbsOutOfTheExportIsRefused() async throws {
        let repository = try GitFixture.make(models: ["Echo": "\(Paths.fixtures)/models/Echo"])
        let escapeName = "autoserve-escape-\(UUID().uuidString)"
        let state = try Paths.temporaryFolder("traversal-state")
        let blob = try repository.gitWithInput(Data("payload\n".utf8), "hash-object", "-w", "--stdin").trimmed
        let etls = try repository.gitWithInput(Data(GitFixture.labelModel("evil").utf8), "hash-object", "-w", "--stdin").trimmed
        // Deep enough to leave STATE_DIR from STATE_DIR/versions/Evil/<staging>/.
        let climb = String(repeating: "../", count: 8) + "tmp/\(escapeName)"
        let tree = try repository.gitWithInput(
            Data("100644 etls.swift\0".utf8) + Data(hex: etls) + Data("100644 \(climb)\0".utf8) + Data(hex: blob),
            "hash-object", "-w", "-t", "tree", "--literally", "--stdin"
        ).trimmed
        let root = try repository.git("write-tree").trimmed
        let rootEntries = try repository.git("ls-tree", root) + "040000 tree \(tree)\tEvil\n"
        let newRoot = try repository.gitWithInput(Data(rootEntries.utf8), "mktree").trimmed
        let commit = try repository.git("commit-tree", newRoot, "-p", "HEAD", "-m", "a crafted tree").trimmed
        try repository.git("update-ref", "refs/heads/main", commit)

        try await withTestServer(
            try await TestServer.start(models: [:]) { configuration in
                configuration.modelsRepo = repository.path
                configuration.stateDir = state
            }
        ) { server async throws in
            let index = try await server.client.get("/")
            #expect(index.json?["Evil"]?["state"] == .string("failed"))
            let message = index.json?["Evil"]?["last_error"]?["message"]?.jsonText ?? ""
            #expect(message.contains("outside the version's folder"), "\(message)")
            #expect(!FileManager.default.fileExists(atPath: "/tmp/\(escapeName)"))
            #expect(try await server.client.post("/Echo", #"{"variables": {"a": 1}}"#).status == 200)
        }
    }

    @Test func aFolderOverMaxModelBytesFailsAndTheOthersServe() async throws {
        let repository = try GitFixture.make(
            models: ["Echo": "\(Paths.fixtures)/models/Echo"],
            files: ["Heavy/etls.swift": GitFixture.labelModel("heavy"), "Heavy/weights.bin": String(repeating: "w", count: 300_000)]
        )
        try await withTestServer(
            try await TestServer.start(models: [:]) { configuration in
                configuration.modelsRepo = repository.path
                configuration.stateDir = try! Paths.temporaryFolder("max-model-bytes")
                configuration.maxModelBytes = 100_000
            }
        ) { server async throws in
            let message = try await server.client.get("/").json?["Heavy"]?["last_error"]?["message"]?.jsonText ?? ""
            #expect(message.contains("MAX_MODEL_BYTES") && message.contains("weights.bin"), "\(message)")
            #expect(try await server.client.post("/Echo", #"{"variables": {"a": 1}}"#).status == 200)

            try await withTestServer(
                try await TestServer.start(models: ["Echo": "\(Paths.fixtures)/models/Echo", "Iris": "\(Paths.modelsServe)/Iris"]) { configuration in
                    configuration.maxModelBytes = 1_500
                }
            ) { local async throws in
                let localIndex = try await local.client.get("/")
                #expect(localIndex.json?["Iris"]?["last_error"]?["message"]?.jsonText.contains("MAX_MODEL_BYTES") == true)
                #expect(localIndex.json?["Echo"]?["state"] == .string("ready"))
            }
        }
    }

    /// The branch is deleted on the remote: a failed sync that changes nothing, not a roll-back to the commit
    /// of the first clone.
    @Test func aDeletedBranchIsAFailedSyncNotARollBack() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("v1")])
        try await withTestServer(
            try await TestServer.start(models: [:]) { configuration in
                configuration.modelsRepo = repository.path
                configuration.stateDir = try! Paths.temporaryFolder("deleted-branch")
                configuration.adminToken = Secret(Self.adminToken)
            }
        ) { server async throws in
            try repository.write("Labelled/etls.swift", GitFixture.labelModel("v2"))
            try repository.commit("v2")
            let v2Commit = try repository.head
            #expect(try await adminSync(server).status == 202)
            try await eventually("v2 serves") { try await server.client.get("/Labelled").json?["label"] == .string("v2") }

            try repository.git("checkout", "-q", "-b", "other")
            try repository.git("branch", "-q", "-D", "main")
            #expect(try await adminSync(server).status == 202)
            try await eventually("the sync fails") {
                try await server.client.get("/").json?["_server"]?["last_sync"]?["result"] == .string("failure")
            }
            let index = try await server.client.get("/")
            #expect(index.json?["_server"]?["last_sync"]?["message"]?.jsonText.contains("no longer has branch main") == true, "\(index.text)")
            #expect(index.json?["_server"]?["commit"] == .string(v2Commit))
            #expect(try await server.client.get("/Labelled").json?["label"] == .string("v2"))
            let ready = try await server.client.get("/readyz")
            #expect(ready.json?["last_sync"]?["result"] == .string("failure"))
        }
    }

    /// A compiler killed by a signal (out of memory, say) is not a compile error: nothing is cached, and the
    /// next sync builds the model.
    @Test func aKilledCompilerIsRetriedOnTheNextSync() async throws {
        let folder = try Paths.temporaryFolder("killed-swiftc")
        let marker = "\(folder)/killed-once"
        let wrapper = "\(folder)/swiftc"
        let real = try #require(
            ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map { "\($0)/swiftc" }
                .first { FileManager.default.isExecutableFile(atPath: $0) })
        try """
        #!/bin/sh
        case "$*" in *ServeModels+*) if [ ! -e \(marker) ]; then touch \(marker); kill -9 $$; fi ;; esac
        exec \(real) "$@"
        """.write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        let models = try Paths.temporaryFolder("killed-swiftc-models")
        try FileManager.default.createDirectory(atPath: "\(models)/Labelled", withIntermediateDirectories: true)
        try GitFixture.labelModel("killed-\(UUID().uuidString)").write(toFile: "\(models)/Labelled/etls.swift", atomically: true, encoding: .utf8)
        try await withTestServer(
            try await TestServer.start(models: [:]) { configuration in
                configuration.modelsDir = models
                configuration.swiftc = wrapper
                configuration.adminToken = Secret(Self.adminToken)
            }
        ) { server async throws in
            let first = try await server.client.get("/")
            #expect(first.json?["Labelled"]?["state"] == .string("failed"))
            #expect(first.json?["Labelled"]?["last_error"]?["build_log"]?.jsonText.contains("retried on the next sync") == true, "\(first.text)")
            #expect(try await adminSync(server).status == 202)
            try await eventually("the model builds on the next sync") { try await server.client.get("/Labelled").status == 200 }
        }
    }

    /// A model sees none of the server's secrets in its environment.
    @Test func workersStartWithoutTheServersSecrets() async throws {
        let models = try Paths.modelsFolder(["EnvProbe": "\(Paths.fixtures)/models/EnvProbe"])
        let secrets = [
            "ADMIN_TOKEN": "admin-secret-for-env-probe", "WEBHOOK_SECRET": "webhook-secret-for-env-probe",
            "GIT_TOKEN": "git-token-for-env-probe", "GIT_SSH_KEY": "/nonexistent/key-for-env-probe", "password": "old-password-for-env-probe",
        ]
        let server = try BinaryServer(
            environment: secrets.merging([
                "MODELS_DIR": models, "STATE_DIR": Paths.sharedState, "AUTOSERVE_HARMLESS": "visible",
            ]) { $1 })
        let port = try await server.waitUntilListening()
        let client = HTTPClient(base: "http://127.0.0.1:\(port)")
        var answer = try await client.get("/EnvProbe")
        try await eventually("EnvProbe answers") {
            answer = try await client.get("/EnvProbe")
            return answer.status == 200
        }
        await server.stopped()
        let environment = answer.json?["environment"]
        #expect(environment?["AUTOSERVE_HARMLESS"] == .string("visible"), "the probe sees the rest of the environment")
        for name in secrets.keys { #expect(environment?[name] == nil, "\(name) reached the worker") }
        let leaked = secrets.values.contains { answer.text.contains($0) }
        #expect(!leaked)
    }

    /// A crash-looping model is `failed` in the index, in `/readyz` and in `autoserve_model_state` alike (a slow
    /// `init(path:)` and `/readyz`: `ReadinessTests`).
    @Test func everyViewOfAModelsStateAgrees() async throws {
        // A state folder of its own: CrashLoop starts once per exported path, and other suites load it too.
        try await withTestServer(
            try await TestServer.start(models: ["CrashLoop": "\(Paths.fixtures)/models/CrashLoop"]) { configuration in
                configuration.stateDir = try! Paths.temporaryFolder("crash-loop-state")
            }
        ) { server async throws in
            #expect(try await server.client.get("/readyz").status == 200)
            #expect(try await server.client.post("/CrashLoop", #"{"variables": {"mode": "crash"}}"#).status == 503)
            try await eventually("the index says failed", timeout: .seconds(60)) {
                try await server.client.get("/").json?["CrashLoop"]?["state"] == .string("failed")
            }
            let ready = try await server.client.get("/readyz")
            #expect(ready.status == 503, "the only model cannot serve: \(ready.text)")
            let metrics = try await server.client.get("/metrics").text
            #expect(metrics.contains(#"autoserve_model_state{model="CrashLoop",state="failed"} 1"#))
            #expect(metrics.contains(#"autoserve_model_state{model="CrashLoop",state="ready"} 0"#))
        }
    }

    func adminSync(_ server: TestServer) async throws -> HTTPAnswer {
        try await server.client.send("POST", "/-/sync", headers: ["Authorization": "Bearer \(Self.adminToken)"])
    }
}

extension RawHTTP {
    /// One POST on its own connection (`Connection: close`), read to the end: what a client receives, byte
    /// for byte, whatever it is.
    static func exchange(port: Int, path: String, body: [UInt8]) async -> [UInt8] {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: (try? readToEnd(port: port, path: path, body: body)) ?? []) }
        }
    }

    static func readToEnd(port: Int, path: String, body: [UInt8]) throws -> [UInt8] {
        let head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        return try readToEnd(port: port, request: Array(head.utf8) + body)
    }

    /// Sends `request` as it is and reads until the server closes the connection.
    static func readToEnd(port: Int, request: [UInt8]) throws -> [UInt8] {
        let socket = try connected(port: port)
        defer { close(socket) }
        var sent = 0
        while sent < request.count {
            let written = request[sent...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { break }
            sent += written
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            received += buffer[0..<count]
        }
        return received
    }
}

extension GitFixture {
    /// Runs git with `input` on its standard input (text or bytes) and returns what it prints.
    @discardableResult
    func gitWithInput(_ input: Data, _ arguments: String...) throws -> String {
        let run = try runWithInput("/usr/bin/git", arguments, input: input, directory: path)
        guard run.status == 0 else { throw TestFailure("git \(arguments.joined(separator: " ")) failed: \(run.output)") }
        return run.output
    }

}

extension String {
    var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}

extension Data {
    /// The bytes of a hex string (an object id).
    init(hex: String) {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        self.init(bytes)
    }
}

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
            // Every answer carries X-Request-ID (README, "The inference log"), a refused expectation's too: the client's own.
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

/// What a model prints reaches the log one line per event, with its model and stream, never glued to the
/// server's own lines, capped in rate, and what a worker printed before it was killed is not lost.
@Suite(.serialized)
struct ModelOutputTests {
    @Test func eachLineAModelPrintsIsAnEventOfItsOwn() async throws {
        let models = try Paths.modelsFolder(["Printer": "\(Paths.fixtures)/models/Printer"])
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync()
        #expect(try await client.post("/Printer", #"{"variables": {}}"#).status == 200)
        #expect(try await client.post("/Printer", #"{"variables": {"mode": "crash"}}"#).status == 503)
        try await eventually("the worker is back") { try await client.post("/Printer", #"{"variables": {}}"#).status == 200 }
        #expect(try await client.post("/Printer", #"{"variables": {"mode": "flood"}}"#).status == 200)
        let metrics = try await client.get("/metrics").text
        await server.stopped()
        let lines = server.logs.split(separator: "\n")
        let stdout = lines.filter { $0.contains(#"msg="hello from the model""#) }
        #expect(!stdout.isEmpty, "\(server.logs.suffix(2000))")
        for line in stdout {
            #expect(line.hasPrefix("ts="), "a line of its own: \(line)")
            #expect(line.contains("model=Printer") && line.contains("stream=stdout"), "\(line)")
        }
        #expect(lines.contains { $0.contains(#"msg="a warning on stderr""#) && $0.contains("stream=stderr") })
        #expect(lines.contains { $0.contains(#"msg="last words before the trap""#) }, "what the worker printed before it died")
        let floodLines = lines.filter { $0.contains("msg=\"flood line") }
        let flood = floodLines.count
        // At most 100 lines in each second the flood lasted (on a loaded machine it spans two or more).
        let seconds = Set(floodLines.map { $0.prefix { $0 != "." } })
        #expect(flood <= 100 * seconds.count && flood < 1000, "at most 100 lines a second for a model: \(flood) in \(seconds.count) s")
        let dropped = metrics.split(separator: "\n").first { $0.hasPrefix(#"autoserve_model_output_dropped_lines_total{model="Printer"}"#) }
        #expect(dropped.flatMap { Int($0.split(separator: " ").last ?? "") }.map { $0 + flood >= 1000 } == true, "\(dropped ?? "no count")")
    }
}

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

/// In-process models cannot be stopped, but they can be answered: a hung call gets 504 at its deadline, its
/// thread is replaced, and a model that keeps hanging is failed; a slow `init(path:)` holds up no other model.
@Suite(.serialized)
struct InProcessHangTests {
    @Test func hungCallsAnswer504AndTheRestKeepsServing() async throws {
        let models = try Paths.modelsFolder([
            "Hang": "\(Paths.fixtures)/models/Hang", "Echo": "\(Paths.fixtures)/models/Echo", "SlowInit": "\(Paths.fixtures)/models/SlowInit",
        ])
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState, "MODEL_ISOLATION": "inprocess"])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        // SlowInit's 20 s init runs meanwhile: health checks answer, and the other models become ready.
        try await eventually("Echo and Hang serve while SlowInit loads", timeout: .seconds(120)) {
            #expect(try await client.get("/healthz").status == 200)
            let index = try await client.get("/").json
            return index?["Echo"]?["state"] == .string("ready") && index?["Hang"]?["state"] == .string("ready")
        }
        #expect(try await client.get("/").json?["SlowInit"]?["state"] == .string("loading"), "the test needs SlowInit still loading")
        let waiting = try await client.get("/readyz")
        #expect(waiting.status == 503 && waiting.text.contains("SlowInit"), "not ready before SlowInit's first load ends: \(waiting.text)")
        for call in 1...3 {
            // More hung calls than the pool has threads: each is answered at its deadline and its thread replaced.
            let hung = try await client.post("/Hang", #"{"variables": {"mode": "hang"}}"#)
            #expect(hung.status == 504, "hung call \(call): \(hung.text)")
            #expect(try await client.post("/Echo", #"{"variables": {"a": 1}}"#).status == 200, "after hung call \(call)")
            #expect(try await client.get("/healthz").status == 200)
        }
        let index = try await client.get("/")
        #expect(index.json?["Hang"]?["state"] == .string("failed"), "\(index.text)")
        #expect(index.json?["Hang"]?["last_error"]?["message"]?.jsonText.contains("MODEL_ISOLATION=process") == true)
        #expect(try await client.post("/Hang", #"{"variables": {}}"#).status == 200, "the version still answers what does not hang")
        let all = try await client.post("/all", #"{"variables": {"a": 1}}"#)
        #expect(all.json?["Echo"] != nil, "\(all.text)")
        let metrics = try await client.get("/metrics").text
        #expect(metrics.contains(#"autoserve_inprocess_hung_calls_total{model="Hang"} 3"#))
        #expect(metrics.contains(#"autoserve_model_state{model="Hang",state="failed"} 1"#))
        await server.stopped()
        #expect(server.logs.contains("in-process call hung past its timeout"))
    }
}

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
            environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState], launcher: ["/usr/bin/perl", "-e", "setpgrp(0, 0); exec @ARGV"])
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
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState, "SHUTDOWN_TIMEOUT": "1s"])
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

/// The lines a child process prints, one at a time, read off the concurrency pool.
final class LineReader: @unchecked Sendable {
    /// Touched only from the reading threads, one at a time (each `next()` awaits the one before).
    private var buffer = Data()
    let handle: FileHandle

    init(_ handle: FileHandle) {
        self.handle = handle
    }

    /// The next line, or `nil` at the end of the output.
    func next() async -> String? {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { [self] in
                while true {
                    if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                        buffer = Data(buffer[buffer.index(after: newline)...])
                        continuation.resume(returning: line)
                        return
                    }
                    let chunk = handle.availableData
                    guard !chunk.isEmpty else {
                        continuation.resume(returning: nil)
                        return
                    }
                    buffer += chunk
                }
            }
        }
    }
}
