import AutoServeApp
import Foundation
import ServingCore
import Testing

/// HTTP remotes behind Basic auth: `GIT_TOKEN` goes through libgit2's credential callback, and no secret
/// ever reaches a log line, the index, `/readyz` or an error.
///
/// The expectations never interpolate a secret, so not even a failing test prints one.
@Suite(.serialized)
struct GitCredentialTests {
    static let user = "deploy"
    static let token = "tok-4d1e-credential-secret"

    /// Starts the smart-HTTP git server of `Tests/Fixtures/tools` over the fixture's parent folder.
    static func httpServer(for repository: GitFixture, password: String = token) async throws -> (Process, Int) {
        let portFile = try Paths.temporaryFolder("git-http") + "/port"
        let process = try startHelper(
            "/usr/bin/env",
            [
                "python3", "\(Paths.fixtures)/tools/git_http_server.py", (repository.path as NSString).deletingLastPathComponent, portFile, user, password,
            ])
        var port: Int?
        // Python starts slowly on a loaded machine (one CI run waited over 90 s): the default bound, and a helper that
        // died fails at once.
        try await eventually("the git HTTP server listens") {
            guard process.isRunning else { throw TestFailure("the git HTTP server exited with status \(process.terminationStatus)") }
            port = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) }
            return port != nil
        }
        return (process, port!)
    }

    @Test func aTokenGoesThroughTheCredentialCallback() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("private")])
        let (http, port) = try await Self.httpServer(for: repository)
        defer { stopHelper(http) }
        try await withTestServer(
            try await TestServer.start(models: [:]) { configuration in
                configuration.modelsRepo = "http://127.0.0.1:\(port)/models"
                configuration.gitUsername = Self.user
                configuration.gitToken = Secret(Self.token)
                configuration.stateDir = Paths.sharedState
            }
        ) { server async throws in
            #expect(try await server.client.get("/Labelled").json?["label"] == .string("private"))
            let index = try await server.client.get("/").text
            let leaked = index.contains(Self.token)
            #expect(!leaked, "the index must not hold the token")
        }
    }

    /// Credentials written into `MODELS_REPO` (a password with a quote in it, legal in a URL) clone and serve;
    /// the password reaches neither the clone's config file (readable by other users), nor a log line, the
    /// index or `/readyz`: the whole user information of the URL is hidden, whatever it holds.
    @Test func credentialsInTheURLStayInMemory() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("in-url")])
        let password = "it's-a-url-secret-5e2"
        let (http, port) = try await Self.httpServer(for: repository, password: password)
        defer { stopHelper(http) }
        // A state folder of its own (its clone's config is read below), the suite's plugin cache (the SDK is not
        // compiled again: on CI's loaded machine a fresh SDK and model took over the 120 s this test once waited).
        let state = try Paths.temporaryFolder("url-credentials")
        let server = try BinaryServer(
            environment: [
                "STATE_DIR": state, "CACHE_DIR": "\(Paths.sharedState)/cache", "CACHE_KEY_FILE": try Paths.sharedCacheKeyFile,
                "MODELS_REPO": "http://\(Self.user):\(password)@127.0.0.1:\(port)/models", "LOG_LEVEL": "debug",
            ], removing: ["GIT_TOKEN", "GIT_USERNAME"])
        let serverPort = try await server.waitUntilListening()
        let client = HTTPClient(base: "http://127.0.0.1:\(serverPort)")
        try await eventually("the model serves", timeout: .seconds(180)) { try await client.get("/Labelled").json?["label"] == .string("in-url") }
        let index = try await client.get("/").text
        let readiness = try await client.get("/readyz").text
        let metrics = try await client.get("/metrics").text
        await server.stopped()
        let configs = try FileManager.default.contentsOfDirectory(atPath: "\(state)/repos").map { "\(state)/repos/\($0)/config" }
        #expect(!configs.isEmpty)
        for config in configs {
            let text = try String(contentsOfFile: config, encoding: .utf8)
            #expect(text.contains("url = http://\(Self.user)@127.0.0.1:\(port)/models"), "the clone's remote is the URL without its password")
            #expect(!text.contains(password.prefix(8)), "the clone's config holds the password")
        }
        #expect(index.contains("http://<redacted>@127.0.0.1:\(port)/models"), "the index names the source without its user information")
        for text in [server.logs, index, readiness, metrics] {
            let leaked = text.contains(password) || text.contains("url-secret")
            #expect(!leaked, "the password was printed or served")
        }
    }

    /// The real binary, with a wrong token and a password in the URL: everything it prints and serves is
    /// searched for both.
    @Test func refusedCredentialsAreReportedWithoutPrintingThem() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("private")])
        let (http, port) = try await Self.httpServer(for: repository)
        defer { stopHelper(http) }
        let urlPassword = "url-pass-8c1f-secret"
        let wrongToken = "wrong-tok-77aa-secret"
        let server = try BinaryServer(environment: [
            "STATE_DIR": try Paths.temporaryFolder("credential-state"),
            "MODELS_REPO": "http://\(Self.user):\(urlPassword)@127.0.0.1:\(port)/models",
            "GIT_TOKEN": wrongToken,
            "ADMIN_TOKEN": "admin-token-for-credential-test",
            "LOG_LEVEL": "debug",
        ])
        let serverPort = try await server.waitUntilListening()
        let client = HTTPClient(base: "http://127.0.0.1:\(serverPort)")
        var readiness = try await client.get("/readyz")
        try await eventually("the refusal is reported", timeout: .seconds(60)) {
            readiness = try await client.get("/readyz")
            return readiness.error("message")?.jsonText.contains("refused the credentials") == true
        }
        #expect(readiness.status == 503)
        let index = try await client.get("/").text
        let sync = try await client.send("POST", "/-/sync", headers: ["Authorization": "Bearer admin-token-for-credential-test"])
        #expect(sync.status == 202)
        // The sync the admin call asked for is over (it failed the same way) before the stop.
        try await eventually("the admin sync ran", timeout: .seconds(60)) {
            try await client.get("/").json?["_server"]?["last_sync"]?["id"] == sync.json?["sync_id"]
        }
        await server.stopped()
        #expect(server.process.terminationStatus == 0, "SIGTERM stops the server cleanly")
        #expect(server.logs.contains("refused the credentials"))
        #expect(server.logs.contains("<redacted>@127.0.0.1"))
        for text in [server.logs, index, readiness.text] {
            let leaked = text.contains(urlPassword) || text.contains(wrongToken)
            #expect(!leaked, "a secret was printed or served")
        }
    }
}
