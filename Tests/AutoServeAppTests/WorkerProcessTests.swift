import AutoServeApp
import Foundation
import ServingCore
import Synchronization
import Testing

/// Process isolation (the default): a trapping, hanging or runaway model costs only its own requests.
@Suite(.serialized)
struct WorkerProcessTests {
    static let server = Task {
        // Sleepy's rows write markers outside the model's folder, which the sandbox forbids: these tests are of
        // the workers' supervision, SandboxTests of their confinement (a confined trap included).
        try await TestServer.start(
            models: [
                "Unruly": "\(Paths.fixtures)/models/Unruly",
                "Echo": "\(Paths.fixtures)/models/Echo",
                "Sleepy": try sleepy(),
            ]
        ) { $0.modelSandbox = .off }
    }

    /// Unruly with a timeout of a minute: rows that sleep until the test releases them must not pass their timeout
    /// on a loaded machine (Unruly's 3 s are for the tests of hung rows).
    static func sleepy() throws -> String {
        let folder = try Paths.temporaryFolder("sleepy") + "/Sleepy"
        try FileManager.default.copyItem(atPath: "\(Paths.fixtures)/models/Unruly", toPath: folder)
        try "description: Unruly that may sleep for long\ntimeout_ms: 60000\nworkers: 2\n".write(
            toFile: "\(folder)/model.yaml", atomically: true, encoding: .utf8)
        return folder
    }

    var client: HTTPClient { get async throws { try await Self.server.value.client } }

    func unruly(_ mode: String) async throws -> HTTPAnswer {
        try await client.post("/Unruly", #"{"variables": {"mode": "\#(mode)"}}"#)
    }

    func recovered() async throws {
        try await eventually("Unruly answers again", timeout: .seconds(60)) {
            let first = try await unruly("fine")
            let second = try await unruly("fine")
            return first.status == 200 && second.status == 200
        }
    }

    @Test func eachModelRunsInItsOwnWorkers() async throws {
        let index = try await client.get("/")
        guard case .array(let pids)? = index.json?["Unruly"]?["workers"]?["pids"] else {
            Issue.record("no worker pids")
            return
        }
        #expect(pids.count == 2, "workers: 2 in model.yaml")
        guard case .array(let echo)? = index.json?["Echo"]?["workers"]?["pids"] else {
            Issue.record("no worker pids")
            return
        }
        #expect(echo.count == 1)
        #expect(Set(pids + echo).count == 3)
    }

    /// Workers are `autoserve-worker`, which maps none of the server's libraries (git, TLS, HTTP).
    @Test func workersAreTheSmallWorkerBinary() async throws {
        let index = try await client.get("/")
        guard case .array(let pids)? = index.json?["Echo"]?["workers"]?["pids"], case .number(let pid)? = pids.first else {
            Issue.record("no worker pid")
            return
        }
        let maps = try String(contentsOfFile: "/proc/\(Int(pid))/maps", encoding: .utf8)
        #expect(maps.contains("autoserve-worker"))
        for library in ["libgit2", "libcrypto", "libssl"] {
            #expect(!maps.contains(library), "a worker maps \(library)")
        }
    }

    /// Every thread of a worker is SCHED_BATCH, so a row sent to it does not preempt the event loop that sent it.
    @Test func workersAreBatchThreads() async throws {
        let index = try await client.get("/")
        guard case .array(let pids)? = index.json?["Echo"]?["workers"]?["pids"], case .number(let pid)? = pids.first else {
            Issue.record("no worker pid")
            return
        }
        let threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(Int(pid))/task")
        #expect(!threads.isEmpty)
        for thread in threads {
            // Field 41 of stat is the policy (3 is SCHED_BATCH); the name in field 2 may hold spaces, so count from ')'.
            let stat = try String(contentsOfFile: "/proc/\(Int(pid))/task/\(thread)/stat", encoding: .utf8)
            let fields = stat[stat.lastIndex(of: ")")!...].split(separator: " ")
            #expect(fields[39] == "3", "thread \(thread) of the worker has policy \(fields[39])")
        }
    }

    @Test func aTrapIsA503WhileOtherModelsKeepAnswering() async throws {
        let crashed = try await unruly("crash")
        #expect(crashed.status == 503)
        #expect(crashed.error("code") == .string("model_unavailable"))
        #expect(crashed.error("message")?.jsonText.contains("crashed (signal") == true)
        #expect(try await client.post("/Echo", #"{"variables": {"x": 1}}"#).status == 200)
        try await recovered()
        let index = try await client.get("/")
        #expect(index.json?["Unruly"]?["workers"]?["last_crash"]?.jsonText.contains("signal") == true)
        #expect(try await client.get("/metrics").text.contains(#"autoserve_worker_restarts_total{model="Unruly",cause="crash"}"#))
    }

    @Test func aHungModelIs504WithinItsTimeoutAndRecovers() async throws {
        let hung = try await unruly("loop")
        #expect(hung.status == 504)
        #expect(hung.error("code") == .string("model_timeout"))
        #expect(hung.error("message")?.jsonText.contains("timeout of 3000 ms") == true, "\(hung.text)")
        #expect(try await client.post("/Echo", #"{"variables": {}}"#).status == 200)
        try await recovered()
        #expect(try await client.get("/metrics").text.contains(#"autoserve_worker_restarts_total{model="Unruly",cause="timeout"}"#))
    }

    /// A worker runs fast calls on its reading thread; a slow call hands the reading on, so both workers
    /// sleeping on a call still answer the next row at once.
    @Test func slowCallsDoNotHoldUpTheRowsBehindThem() async throws {
        let markers = try Paths.temporaryFolder("unruly-markers")
        let held = Tally()
        let slow = (0..<2).map { index in
            Task {
                let body = #"{"variables": {"mode": "sleep", "marker": "\#(markers)/\#(index)", "release": "\#(markers)/release"}}"#
                defer { held.add() }
                return try await client.post("/Sleepy", body)
            }
        }
        try await eventually("both workers sleep on a row", timeout: .seconds(60)) {
            (try? FileManager.default.contentsOfDirectory(atPath: markers).count) == 2
        }
        let fast = try await client.post("/Sleepy", #"{"variables": {"mode": "fine"}}"#)
        #expect(fast.status == 200)
        #expect(held.count == 0, "the fast row waited for a slow one")
        #expect(FileManager.default.createFile(atPath: "\(markers)/release", contents: nil))
        for row in slow { #expect(try await row.value.status == 200) }
    }

    @Test func aMemoryHogIsStoppedAndRestarted() async throws {
        let hog = try await unruly("hog")
        #expect(hog.status == 503)
        #expect(hog.error("message")?.jsonText.contains("memory_mb") == true)
        try await recovered()
        #expect(try await client.get("/metrics").text.contains(#"autoserve_worker_restarts_total{model="Unruly",cause="memory"}"#))
    }

    @Test func allListsACrashedMemberAndAnswersWithTheOthers() async throws {
        let answer = try await client.post("/all", #"{"variables": {"mode": "crash"}}"#)
        #expect(answer.status == 200)
        #expect(answer.json?["Echo"]?["echo"] == .object(["mode": .string("crash")]))
        #expect(answer.json?["_errors"]?["Unruly"]?["status"] == .number(503))
        try await recovered()
    }

    @Test func aModelThatCrashesOnEveryStartIsMarkedFailedWithTheReason() async throws {
        // CrashLoop remembers its first start in /tmp, which a confined worker cannot write.
        let start = try await TestServer.start(models: ["CrashLoop": "\(Paths.fixtures)/models/CrashLoop"]) { $0.modelSandbox = .off }
        try await withTestServer(start) { server async throws in
            #expect(try await server.client.get("/CrashLoop").status == 200)
            #expect(try await server.client.post("/CrashLoop", #"{"variables": {"mode": "crash"}}"#).status == 503)
            try await eventually("the index says failed", timeout: .seconds(60)) {
                try await server.client.get("/").json?["CrashLoop"]?["state"] == .string("failed")
            }
            let lastCrash = try await server.client.get("/").json?["CrashLoop"]?["workers"]?["last_crash"]?.jsonText ?? ""
            #expect(lastCrash.contains("failed start") && lastCrash.contains("signal"), "\(lastCrash)")
            #expect(try await server.client.get("/CrashLoop").status == 503)
        }
    }

    /// docs/http-api.md's "OpenAPI": the document follows the versions serving, and a data model's schema comes from its file.
    @Test func theOpenAPIDocumentChangesWhenAVersionSwaps() async throws {
        let models = ["CreditScore": "\(Paths.modelsServe)/CreditScore"]
        let server = try await TestServer.start(models: models) { $0.adminToken = Secret("route-token") }
        try await withTestServer(server) { server async throws in
            let before = try #require(try await server.client.get("/openapi.json").json)
            #expect(before["paths"]?["/-/sync"]?["post"]?["security"] != nil, "on with ADMIN_TOKEN")
            let credit = before["paths"]?["/CreditScore"]?["post"]?["requestBody"]?["content"]?["application/json"]?["schema"]?["anyOf"]?[0]
            #expect(credit?["properties"]?["variables"]?["properties"]?["income"] == ["type": ["number", "boolean", "null"]])
            #expect(credit?["properties"]?["variables"]?["properties"]?["home"]?["examples"] == ["mortgage", "own", "rent"])
            let folder = "\(server.modelsDirectory)/Labelled"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try GitFixture.labelModel("old").write(toFile: "\(folder)/etls.swift", atomically: true, encoding: .utf8)
            server.server.manager.requestSync(reason: "test")
            try await eventually("Labelled serves") { try await server.client.get("/Labelled").json?["label"] == .string("old") }
            let after = try #require(try await server.client.get("/openapi.json").json)
            #expect(after["paths"]?["/Labelled"]?["post"] != nil)
            #expect(after["info"]?["version"] != before["info"]?["version"], "a digest of the versions serving")
        }
    }

    @Test func aReplacedVersionsWorkersStopOnceDrained() async throws {
        try await withTestServer(try await TestServer.start(models: [:]) { _ in }) { server async throws in
            let folder = "\(server.modelsDirectory)/Labelled"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try GitFixture.labelModel("old").write(toFile: "\(folder)/etls.swift", atomically: true, encoding: .utf8)
            server.server.manager.requestSync(reason: "test")
            try await eventually("old serves") { try await server.client.get("/Labelled").json?["label"] == .string("old") }
            guard case .array(let old)? = try await server.client.get("/").json?["Labelled"]?["workers"]?["pids"],
                case .number(let pid)? = old.first
            else {
                Issue.record("no worker pid")
                return
            }
            try GitFixture.labelModel("new").write(toFile: "\(folder)/etls.swift", atomically: true, encoding: .utf8)
            server.server.manager.requestSync(reason: "test")
            try await eventually("new serves") { try await server.client.get("/Labelled").json?["label"] == .string("new") }
            try await eventually("the old version's worker has exited", timeout: .seconds(60)) {
                kill(Int32(pid), 0) != 0 || Self.isZombie(Int32(pid))
            }
        }
    }

    /// The real binary: after SIGTERM, and after SIGKILL, none of its workers is left running.
    @Test(arguments: [SIGTERM, SIGKILL])
    func noWorkerOutlivesTheServer(signal: Int32) async throws {
        let server = try BinaryServer(environment: [
            "STATE_DIR": Paths.sharedState,
            "MODELS_DIR": try Paths.modelsFolder(["Echo": "\(Paths.fixtures)/models/Echo", "Unruly": "\(Paths.fixtures)/models/Unruly"]),
        ])
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync()
        var pids: [Int32] = []
        for name in ["Echo", "Unruly"] {
            if case .array(let list)? = try await client.get("/").json?[name]?["workers"]?["pids"] {
                pids += list.compactMap { if case .number(let pid) = $0 { Int32(pid) } else { nil } }
            }
        }
        #expect(pids.count == 3)
        kill(server.process.processIdentifier, signal)
        server.process.waitUntilExit()
        if signal == SIGTERM { #expect(server.process.terminationStatus == 0) }
        try await eventually("every worker has exited", timeout: .seconds(60)) {
            pids.allSatisfy { kill($0, 0) != 0 || Self.isZombie($0) }
        }
    }

    /// The real binary tells a worker's unplanned exit in its log, with the cause and when it restarts.
    @Test func aWorkersCrashIsLogged() async throws {
        let server = try BinaryServer(environment: [
            "STATE_DIR": Paths.sharedState,
            "MODELS_DIR": try Paths.modelsFolder(["Unruly": "\(Paths.fixtures)/models/Unruly"]),
        ])
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync()
        #expect(try await client.post("/Unruly", #"{"variables": {"mode": "crash"}}"#).status == 503)
        try await eventually("Unruly answers again", timeout: .seconds(60)) {
            try await client.post("/Unruly", #"{"variables": {"mode": "fine"}}"#).status == 200
        }
        await server.stopped()
        let line = server.logs.split(separator: "\n").first { $0.contains("worker exited; restarting it") }
        #expect(line?.contains("model=Unruly") == true, "\(server.logs)")
        #expect(line?.contains("cause=crash") == true)
        #expect(line?.contains("detail=\"signal") == true)
        #expect(line?.contains("restart_in_seconds=") == true)
    }

    static func isZombie(_ pid: Int32) -> Bool {
        ((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "").contains(") Z ")
    }
}
