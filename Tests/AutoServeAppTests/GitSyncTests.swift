import AutoServeApp
import Crypto
import Foundation
import ServingCore
import Synchronization
import Testing

/// The git sync of docs/git-sync.md's "Serving a git repository" against real repositories: clone, admin and webhook syncs, swaps under load,
/// broken pushes, added and removed folders, restarts, unreachable remotes, git daemon, credentials.
@Suite(.serialized)
struct GitSyncTests {
    static let adminToken = "admin-token-7f3a"
    static let webhookSecret = "webhook-secret-91c2"

    static func gitServer(_ repository: String, state: String = Paths.sharedState, configure: (inout ServerConfiguration) -> Void = { _ in }) async throws
        -> TestServer
    {
        try await TestServer.start(models: [:]) { configuration in
            configuration.modelsRepo = repository
            configuration.stateDir = state
            configuration.adminToken = Secret(adminToken)
            configuration.webhookSecret = Secret(webhookSecret)
            configure(&configuration)
        }
    }

    static func label(_ server: TestServer) async throws -> JSONValue? {
        try await server.client.get("/Labelled").json?["label"]
    }

    func adminSync(_ server: TestServer) async throws -> HTTPAnswer {
        try await server.client.send("POST", "/-/sync", headers: ["Authorization": "Bearer \(Self.adminToken)"])
    }

    @Test func clonesServesAndPicksUpAPushAfterAnAdminSync() async throws {
        let repository = try GitFixture.make(models: ["Echo": "\(Paths.fixtures)/models/Echo"], files: ["Labelled/etls.swift": GitFixture.labelModel("v1")])
        try await withTestServer(try await Self.gitServer(repository.path)) { server async throws in
            #expect(try await Self.label(server) == .string("v1"))
            let index = try await server.client.get("/")
            #expect(index.json?["_server"]?["commit"] == .string(try repository.head))
            #expect(index.json?["Labelled"]?["version"] == .string(try repository.treeID("Labelled")))
            #expect(index.json?["Labelled"]?["commit"] == .string(try repository.head))
            #expect(try await server.client.get("/readyz").json?["commit"] == .string(try repository.head))
            let echoLoadedAt = index.json?["Echo"]?["loaded_at"]

            try repository.write("Labelled/etls.swift", GitFixture.labelModel("v2"))
            try repository.commit("v2")
            #expect(try await server.client.send("POST", "/-/sync").status == 401)
            #expect(try await server.client.send("POST", "/-/sync", headers: ["Authorization": "Bearer wrong"]).status == 401)
            #expect(try await server.client.send("GET", "/-/sync", headers: ["Authorization": "Bearer \(Self.adminToken)"]).status == 405)
            let accepted = try await adminSync(server)
            #expect(accepted.status == 202)
            guard case .number = accepted.json?["sync_id"] else {
                Issue.record("no sync_id in \(accepted.text)")
                return
            }
            try await eventually("v2 serves") { try await Self.label(server) == .string("v2") }
            let after = try await server.client.get("/")
            #expect(after.json?["Labelled"]?["version"] == .string(try repository.treeID("Labelled")))
            #expect(after.json?["Echo"]?["loaded_at"] == echoLoadedAt, "an unchanged model is not reloaded")
            #expect(after.json?["_server"]?["last_sync"]?["result"] == .string("success"))
        }
    }

    @Test func aSignedWebhookSyncsAndABadSignatureStartsNothing() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("one")])
        try await withTestServer(try await Self.gitServer(repository.path)) { server async throws in
            try repository.write("Labelled/etls.swift", GitFixture.labelModel("two"))
            try repository.commit("two")
            let body = #"{"ref": "refs/heads/main", "after": "\#(try repository.head)"}"#
            let lastSync = try await server.client.get("/").json?["_server"]?["last_sync"]?["id"]

            let forged = try await server.client.send(
                "POST", "/hooks/git", body: body, headers: ["X-Hub-Signature-256": "sha256=" + String(repeating: "0", count: 64)])
            #expect(forged.status == 401)
            #expect(try await server.client.send("POST", "/hooks/git", body: body).status == 401)
            #expect(try await server.client.send("POST", "/hooks/git", body: body, headers: ["X-Gitlab-Token": "nope"]).status == 401)
            #expect(try await server.client.get("/").json?["_server"]?["last_sync"]?["id"] == lastSync)
            #expect(try await Self.label(server) == .string("one"))

            let otherBranch = #"{"ref": "refs/heads/dev"}"#
            let ignored = try await server.client.send("POST", "/hooks/git", body: otherBranch, headers: ["X-Hub-Signature-256": Self.signature(otherBranch)])
            #expect(ignored.status == 200)
            #expect(ignored.json?["status"] == .string("ignored"))

            let signed = try await server.client.send(
                "POST", "/hooks/git", body: body, headers: ["X-Hub-Signature-256": Self.signature(body), "X-GitHub-Event": "push"])
            #expect(signed.status == 202)
            // Sync ids count every sync requested: the next after the last one shows that no unverified hook started one.
            if case .number(let last)? = lastSync {
                #expect(signed.json?["sync_id"] == .number(last + 1), "an unverified hook starts nothing")
            } else {
                Issue.record("no last sync in the index")
            }
            try await eventually("two serves") { try await Self.label(server) == .string("two") }

            try repository.write("Labelled/etls.swift", GitFixture.labelModel("three"))
            try repository.commit("three")
            let gitlab = try await server.client.send("POST", "/hooks/git", body: body, headers: ["X-Gitlab-Token": Self.webhookSecret])
            #expect(gitlab.status == 202)
            try await eventually("three serves") { try await Self.label(server) == .string("three") }
        }
    }

    /// A delivery sent again (GitHub's, Gitea's or GitLab's id) is answered with the sync it started and
    /// starts none; a new delivery starts a sync.
    @Test func aReplayedDeliveryStartsNoSync() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("one")])
        try await withTestServer(try await Self.gitServer(repository.path)) { server async throws in
            let body = #"{"ref": "refs/heads/main"}"#
            for header in ["X-GitHub-Delivery", "X-Gitea-Delivery", "X-Gitlab-Event-UUID"] {
                let delivery = UUID().uuidString
                let headers = ["X-Hub-Signature-256": Self.signature(body), header: delivery]
                let first = try await server.client.send("POST", "/hooks/git", body: body, headers: headers)
                #expect(first.status == 202)
                try await eventually("the sync ran") {
                    try await server.client.get("/").json?["_server"]?["last_sync"]?["id"] == first.json?["sync_id"]
                }
                let replay = try await server.client.send("POST", "/hooks/git", body: body, headers: headers)
                #expect(replay.status == 200, "\(header)")
                #expect(replay.json?["status"] == .string("duplicate"))
                #expect(replay.json?["sync_id"] == first.json?["sync_id"])
                let forgedReplay = try await server.client.send("POST", "/hooks/git", body: body, headers: [header: delivery])
                #expect(forgedReplay.status == 401, "an unsigned request learns nothing about deliveries")
            }
            let metrics = try await server.client.get("/metrics").text
            #expect(metrics.contains(#"autoserve_syncs_total{result="success"} 4"#), "the first sync and one per delivery")
        }
    }

    static func signature(_ body: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(body.utf8), using: SymmetricKey(data: Data(webhookSecret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    @Test func noRequestFailsWhileAChangedModelIsSwapped() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("before")])
        try await withTestServer(try await Self.gitServer(repository.path)) { server async throws in
            let client = server.client
            let stop = Flag()
            let answered = Tally()
            let load = Task {
                try await withThrowingTaskGroup(of: (ok: Int, failed: Int, labels: Set<String>).self) { group in
                    for _ in 0..<6 {
                        group.addTask {
                            var ok = 0
                            var failed = 0
                            var labels = Set<String>()
                            while !stop.isSet {
                                let answer = try await client.post("/Labelled", #"{"variables": {}}"#)
                                if answer.status == 200, case .string(let label)? = answer.json?["label"] {
                                    ok += 1
                                    answered.add()
                                    labels.insert(label)
                                } else {
                                    failed += 1
                                }
                            }
                            return (ok, failed, labels)
                        }
                    }
                    return try await group.reduce(into: (ok: 0, failed: 0, labels: Set<String>())) { total, next in
                        total.ok += next.ok
                        total.failed += next.failed
                        total.labels.formUnion(next.labels)
                    }
                }
            }
            try await eventually("the load runs") { answered.count > 0 }
            try repository.write("Labelled/etls.swift", GitFixture.labelModel("after"))
            try repository.commit("after")
            #expect(try await adminSync(server).status == 202)
            try await eventually("after serves") { try await Self.label(server) == .string("after") }
            stop.set()
            let totals = try await load.value
            #expect(totals.failed == 0)
            #expect(totals.labels == ["before", "after"])
            #expect(totals.ok > 50)
        }
    }

    @Test func aBrokenPushKeepsTheOldVersionAndFoldersComeAndGo() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("good")])
        try await withTestServer(try await Self.gitServer("file://\(repository.path)")) { server async throws in
            let goodVersion = try repository.treeID("Labelled")

            try repository.write("Labelled/etls.swift", GitFixture.labelModel("bad", compiles: false))
            try repository.copy("\(Paths.fixtures)/models/Echo", as: "Echo")
            try repository.commit("break Labelled, add Echo")
            #expect(try await adminSync(server).status == 202)
            try await eventually("Echo serves") { try await server.client.get("/Echo").status == 200 }
            try await eventually("the failure is reported") {
                try await server.client.get("/").json?["Labelled"]?["last_error"] != .null
            }
            let index = try await server.client.get("/")
            #expect(index.json?["Labelled"]?["state"] == .string("ready"))
            #expect(index.json?["Labelled"]?["version"] == .string(goodVersion))
            #expect(index.json?["Labelled"]?["last_error"]?["version"] == .string(try repository.treeID("Labelled")))
            #expect(index.json?["Labelled"]?["last_error"]?["message"]?.jsonText.contains("cannot convert value of type 'String'") == true)
            #expect(try await Self.label(server) == .string("good"))

            try repository.remove("Labelled")
            try repository.commit("remove Labelled")
            #expect(try await adminSync(server).status == 202)
            try await eventually("Labelled is gone") { try await server.client.get("/Labelled").status == 404 }
            #expect(try await server.client.get("/Echo").status == 200)
        }
    }

    /// Five sync requests in a row: each is accepted with the id of the sync that serves it (the one running or the
    /// one queued behind it), syncs run one at a time, and the push is served. (A sync only lists the repository, so
    /// whether requests meet a running sync here is a matter of timing: `ModelManagerTests` holds a sync open to show
    /// that requests during one become exactly one more.)
    @Test func syncRequestsInARowEachNameTheSyncThatServesThem() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("first")])
        try await withTestServer(try await Self.gitServer(repository.path)) { server async throws in
            func successes() async throws -> Int {
                let metrics = try await server.client.get("/metrics").text
                let line = metrics.split(separator: "\n").first { $0.hasPrefix(#"autoserve_syncs_total{result="success"}"#) }
                return line.flatMap { Int($0.split(separator: " ").last!) } ?? 0
            }
            let before = try await successes()
            let label = "coalesced-\(UUID().uuidString.prefix(8))"
            try repository.write("Labelled/etls.swift", GitFixture.labelModel(label))
            try repository.commit("a push")
            var ids: [Int] = []
            for _ in 0..<5 {
                let answer = try await adminSync(server)
                #expect(answer.status == 202)
                ids.append(answer.json?["sync_id"]?.int ?? 0)
            }
            #expect(ids == ids.sorted() && ids.first ?? 0 > 0, "\(ids)")
            try await eventually("the last sync named ran") { try await server.client.get("/").json?["_server"]?["last_sync"]?["id"]?.int == ids.last }
            #expect(try await successes() == before + Set(ids).count, "one sync per distinct id: \(ids)")
            try await eventually("the push serves") { try await Self.label(server) == .string(label) }
        }
    }

    @Test func aRestartOnAnUnchangedRepositoryBuildsNothing() async throws {
        let repository = try GitFixture.make(models: ["Echo": "\(Paths.fixtures)/models/Echo"], files: ["Labelled/etls.swift": GitFixture.labelModel("same")])
        let state = try Paths.temporaryFolder("restart-state")
        let first = try await Self.gitServer(repository.path, state: state)
        #expect(try await first.client.get("/metrics").text.contains(#"autoserve_model_builds_total{model="Labelled",result="success"} 1"#))
        await first.stop()

        try await withTestServer(try await Self.gitServer(repository.path, state: state)) { second async throws in
            let metrics = try await second.client.get("/metrics").text
            #expect(!metrics.contains("autoserve_model_builds_total{"), "a restart on an unchanged repository compiles nothing")
            #expect(metrics.contains(#"autoserve_plugin_loads_total{model="Labelled",result="success"} 1"#))
            #expect(try await Self.label(second) == .string("same"))
        }
    }

    @Test func anUnreachableRemoteKeepsServingAndReportsTheError() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("kept")])
        try await withTestServer(try await Self.gitServer(repository.path)) { server async throws in
            let moved = repository.path + "-moved"
            try FileManager.default.moveItem(atPath: repository.path, toPath: moved)
            #expect(try await adminSync(server).status == 202)
            try await eventually("the failed fetch is reported") {
                try await server.client.get("/").json?["_server"]?["last_sync"]?["result"] == .string("failure")
            }
            let index = try await server.client.get("/")
            #expect(index.json?["_server"]?["last_sync"]?["message"]?.jsonText.contains("cannot fetch") == true)
            #expect(try await Self.label(server) == .string("kept"))
            #expect(try await server.client.get("/readyz").status == 200)
            #expect(try await server.client.get("/metrics").text.contains(#"autoserve_syncs_total{result="failure"}"#))

            try FileManager.default.moveItem(atPath: moved, toPath: repository.path)
            try repository.write("Labelled/etls.swift", GitFixture.labelModel("recovered"))
            try repository.commit("recovered")
            #expect(try await adminSync(server).status == 202)
            try await eventually("the next sync recovers") { try await Self.label(server) == .string("recovered") }
        }
    }

    @Test func aFirstCloneThatFailsIsNotReadyAndIsRetried() async throws {
        try await withTestServer(
            try await TestServer.start(models: [:], waitUntilReady: false) { configuration in
                configuration.modelsRepo = "/nonexistent/models.git"
                configuration.stateDir = Paths.sharedState
            }
        ) { server async throws in
            try await eventually("readyz reports the clone failure", timeout: .seconds(30)) {
                try await server.client.get("/readyz").error("message")?.jsonText.contains("cannot clone") == true
            }
            #expect(try await server.client.get("/readyz").status == 503)
            try await eventually("the clone is retried with backoff", timeout: .seconds(30)) {
                try await server.client.get("/metrics").text.contains(#"autoserve_syncs_total{result="failure"} 2"#)
            }
        }
    }

    @Test func aShortSyncIntervalPicksUpPushesOnItsOwn() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("early")])
        try await withTestServer(
            try await Self.gitServer(repository.path) { configuration in
                configuration.syncInterval = .seconds(1)
            }
        ) { server async throws in
            try repository.write("Labelled/etls.swift", GitFixture.labelModel("late"))
            try repository.commit("late")
            try await eventually("the scheduled sync serves the push", timeout: .seconds(60)) { try await Self.label(server) == .string("late") }
        }
    }

    @Test func syncsOverGitDaemon() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("daemon-1")])
        let port = try freePort()
        let base = (repository.path as NSString).deletingLastPathComponent
        let daemon = try startHelper(try gitDaemonPath(), ["--reuseaddr", "--export-all", "--listen=127.0.0.1", "--port=\(port)", "--base-path=\(base)", base])
        defer { stopHelper(daemon) }
        try await eventually("git daemon listens") { (try? RawHTTP.connected(port: port)).map { close($0) } != nil }
        try await withTestServer(try await Self.gitServer("git://127.0.0.1:\(port)/models")) { server async throws in
            #expect(try await Self.label(server) == .string("daemon-1"))
            try repository.write("Labelled/etls.swift", GitFixture.labelModel("daemon-2"))
            try repository.commit("daemon-2")
            #expect(try await adminSync(server).status == 202)
            try await eventually("daemon-2 serves") { try await Self.label(server) == .string("daemon-2") }
            #expect(try await server.client.get("/").json?["_server"]?["source"] == .string("git://127.0.0.1:\(port)/models (main)"))
        }
    }
}

/// A flag set once, read from many tasks.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)

    var isSet: Bool { value.load(ordering: .acquiring) }

    func set() { value.store(true, ordering: .releasing) }
}

/// A count several tasks add to.
final class Tally: Sendable {
    private let value = Atomic<Int>(0)

    var count: Int { value.load(ordering: .relaxed) }

    func add() { value.add(1, ordering: .relaxed) }
}
