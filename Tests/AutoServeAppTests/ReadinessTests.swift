import AutoServeApp
import Foundation
import ServingCore
import Testing

/// docs/http-api.md, "HTTP API" (`/readyz`) and "Reliability" (no model holds up another), through the real server: a fresh
/// start is ready only once every model folder had its first load, and a push serves a quick model's new version
/// while a slow one loads.
struct ReadinessTests {
    /// A copy of the SlowInit fixture whose `init(path:)` takes `seconds`.
    static func slowInit(_ seconds: Int) throws -> String {
        let folder = try Paths.temporaryFolder("slow-init") + "/SlowInit"
        try FileManager.default.copyItem(atPath: "\(Paths.fixtures)/models/SlowInit", toPath: folder)
        try "\(seconds)\n".write(toFile: "\(folder)/delay.txt", atomically: true, encoding: .utf8)
        return folder
    }

    /// A copy of the SlowInit fixture whose `init(path:)` lasts until the test creates the file `release` (a test
    /// that asserts "still loading" waits on that event, not on a delay a loaded machine can outrun).
    static func heldSlowInit() throws -> (folder: String, release: String) {
        let base = try Paths.temporaryFolder("slow-init")
        try FileManager.default.copyItem(atPath: "\(Paths.fixtures)/models/SlowInit", toPath: "\(base)/SlowInit")
        try "until \(base)/release\n".write(toFile: "\(base)/SlowInit/delay.txt", atomically: true, encoding: .utf8)
        return ("\(base)/SlowInit", "\(base)/release")
    }

    /// Ends the `init(path:)` of a `heldSlowInit()` copy.
    static func release(_ file: String) {
        FileManager.default.createFile(atPath: file, contents: Data())
    }

    @Test func aFreshStartIsReadyOnlyOnceEveryFolderHadItsFirstLoad() async throws {
        let slowInit = try Self.heldSlowInit()
        defer { Self.release(slowInit.release) }
        let models = ["Quick": "\(Paths.fixtures)/models/Echo", "Broken": "\(Paths.fixtures)/broken/CompileError", "SlowInit": slowInit.folder]
        try await withTestServer(try await TestServer.start(models: models, waitUntilReady: false)) { server async throws in
            // Quick serves and Broken failed while SlowInit is in its init(path:): not ready, and the reason says why.
            try await eventually("Quick serves and Broken failed", timeout: .seconds(300)) {
                let index = try await server.client.get("/").json
                return index?["Quick"]?["state"] == .string("ready") && index?["Broken"]?["state"] == .string("failed")
            }
            let loadingSince = ContinuousClock.now
            let index = try await server.client.get("/").json
            try #require(index?["SlowInit"]?["state"] == .string("loading"), "the test needs SlowInit still loading")
            #expect([.string("building"), .string("loading")].contains(index?["SlowInit"]?["pending"]?["phase"]))
            let waiting = try await server.client.get("/readyz")
            #expect(waiting.status == 503)
            #expect(waiting.error("message") == .string("loading the first version of 1 of 3 model(s): SlowInit"), "\(waiting.text)")
            #expect(try await server.client.get("/v2/health/ready").status == 400, "the v2 protocol's not-ready answer")
            Self.release(slowInit.release)

            // The first 200, and from that moment every model that can load answers.
            try await eventually("/readyz answers 200", timeout: .seconds(300)) { try await server.client.get("/readyz").status == 200 }
            let quick = try await server.client.post("/Quick", #"{"variables": {"x": 1}}"#)
            let slow = try await server.client.post("/SlowInit", #"{"variables": {}}"#)
            let broken = try await server.client.post("/Broken", #"{"variables": {}}"#)
            #expect(quick.status == 200 && slow.status == 200, "\(quick.text) \(slow.text)")
            #expect(slow.json?["delay"] == .number(-1), "the held copy answers")
            #expect(broken.status == 503 && broken.error("code") == .string("model_failed"), "\(broken.text)")
            #expect(ContinuousClock.now - loadingSince < .seconds(300))
            #expect(try await server.client.get("/v2/health/ready").status == 200)
        }
    }

    @Test func aPushServesAQuickModelsNewVersionWhileASlowOneLoadsAndReadinessHolds() async throws {
        let repository = try GitFixture.make(models: ["Iris": "\(Paths.modelsServe)/Iris", "SlowInit": try Self.slowInit(0)])
        try await withTestServer(try await GitSyncTests.gitServer(repository.path)) { server async throws in
            let before = try await server.client.get("/").json
            let slowVersion = before?["SlowInit"]?["version"]
            #expect(slowVersion == .string(try repository.treeID("SlowInit")))
            // One push changes both: Iris's manifest, and SlowInit's init(path:), which now takes 100 s (under the
            // workers' 120 s start timeout). Alone on this machine Iris's new version serves about 1.5 s after the
            // request (BENCHMARKS.md); with the whole suite compiling at once, its build can take tens of seconds.
            let manifest = try String(contentsOfFile: "\(repository.path)/Iris/model.yaml", encoding: .utf8)
            try repository.write("Iris/model.yaml", manifest.replacingOccurrences(of: "description:", with: "description: (v2)"))
            try repository.write("SlowInit/delay.txt", "100\n")
            try repository.commit("Iris v2, SlowInit that loads for 100 s")
            let newIris = JSONValue.string(try repository.treeID("Iris"))

            let requested = ContinuousClock.now
            #expect(try await server.client.send("POST", "/-/sync", headers: ["Authorization": "Bearer \(GitSyncTests.adminToken)"]).status == 202)
            var readiness: Set<Int> = []
            try await eventually("Iris's new version serves", timeout: .seconds(95)) {
                readiness.insert(try await server.client.get("/readyz").status)
                return try await server.client.get("/").json?["Iris"]?["version"] == newIris
            }
            let served = ContinuousClock.now - requested
            print("Iris's new version served \(served) after the sync request, while SlowInit's loads for 100 s")
            #expect(readiness == [200], "/readyz stayed 200 through the push")
            let index = try await server.client.get("/").json
            #expect(index?["SlowInit"]?["version"] == slowVersion, "the old version serves")
            let phase = index?["SlowInit"]?["pending"]?["phase"]
            #expect([.string("building"), .string("loading")].contains(phase), "SlowInit's new version is still under way: \(phase.map { "\($0)" } ?? "none")")
            #expect(index?["SlowInit"]?["pending"]?["version"] == .string(try repository.treeID("SlowInit")))
            let slow = try await server.client.post("/SlowInit", #"{"variables": {}}"#)
            #expect(slow.status == 200 && slow.json?["delay"] == .number(0), "the old version answers meanwhile")
            let row = #"{"variables": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}"#
            #expect(try await server.client.post("/Iris", row).status == 200)
            #expect(try await server.client.get("/readyz").status == 200)
        }
    }
}
