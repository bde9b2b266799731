import AutoServeApp
import Foundation
import ServingCore
import Testing

/// What a hostile client or a hostile models repository can do to the server, each through the real server
/// (docs/operations.md, "Reliability"): the server answers, keeps serving the models that work, and gives nothing away.
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
                // The wrapper leaves its marker outside the build folder, which a confined compiler cannot write.
                configuration.modelSandbox = .off
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

    /// A model sees none of the server's secrets in its environment, nor anything else of it that is not on the
    /// allowlist (docs/operations.md, "The sandbox"): unrelated secrets of the container and the inference log's path included.
    @Test func workersStartWithoutTheServersSecrets() async throws {
        let models = try Paths.modelsFolder(["EnvProbe": "\(Paths.fixtures)/models/EnvProbe"])
        let secrets = [
            "ADMIN_TOKEN": "admin-secret-for-env-probe", "WEBHOOK_SECRET": "webhook-secret-for-env-probe",
            "GIT_TOKEN": "git-token-for-env-probe", "GIT_SSH_KEY": "/nonexistent/key-for-env-probe", "password": "old-password-for-env-probe",
            "AWS_SECRET_ACCESS_KEY": "aws-secret-for-env-probe", "DATABASE_URL": "postgres://user:db-secret-for-env-probe@db/rows",
            "INFERENCE_LOG": try Paths.temporaryFolder("env-probe-log") + "/rows-for-env-probe.jsonl", "AUTOSERVE_UNLISTED": "unlisted-for-env-probe",
        ]
        let server = try BinaryServer(
            environment: secrets.merging([
                "MODELS_DIR": models, "STATE_DIR": Paths.sharedState, "AUTOSERVE_HARMLESS": "visible", "MODEL_ENV": "AUTOSERVE_HARMLESS",
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
        #expect(environment?["AUTOSERVE_HARMLESS"] == .string("visible"), "the probe sees what MODEL_ENV names")
        #expect(environment?["PATH"] != nil && environment?["TMPDIR"] != nil, "\(answer.text)")
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
                // CrashLoop remembers its first start in /tmp, which a confined worker cannot write.
                configuration.modelSandbox = .off
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
