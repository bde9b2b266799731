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
    static func httpServer(for repository: GitFixture) async throws -> (Process, Int) {
        let portFile = try Paths.temporaryFolder("git-http") + "/port"
        let process = try startHelper("/usr/bin/env", [
            "python3", "\(Paths.fixtures)/tools/git_http_server.py", (repository.path as NSString).deletingLastPathComponent, portFile, user, token,
        ])
        var port: Int?
        try await eventually("the git HTTP server listens", timeout: .seconds(20)) {
            port = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) }
            return port != nil
        }
        return (process, port!)
    }

    @Test func aTokenGoesThroughTheCredentialCallback() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("private")])
        let (http, port) = try await Self.httpServer(for: repository)
        defer { stopHelper(http) }
        let server = try await TestServer.start(models: [:]) { configuration in
            configuration.modelsRepo = "http://127.0.0.1:\(port)/models"
            configuration.gitUsername = Self.user
            configuration.gitToken = Secret(Self.token)
            configuration.stateDir = Paths.sharedState
        }
        defer { Task { await server.stop() } }
        #expect(try await server.client.get("/Labelled").json?["label"] == .string("private"))
        let index = try await server.client.get("/").text
        let leaked = index.contains(Self.token)
        #expect(!leaked, "the index must not hold the token")
    }

    /// The real binary, with a wrong token and a password in the URL: everything it prints and serves is
    /// searched for both.
    @Test func refusedCredentialsAreReportedWithoutPrintingThem() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("private")])
        let (http, port) = try await Self.httpServer(for: repository)
        defer { stopHelper(http) }
        let urlPassword = "url-pass-8c1f-secret"
        let wrongToken = "wrong-tok-77aa-secret"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Paths.binary)
        process.arguments = ["serve"]
        var environment = ProcessInfo.processInfo.environment
        environment["PORT"] = "0"
        environment["HOST"] = "127.0.0.1"
        environment["STATE_DIR"] = try Paths.temporaryFolder("credential-state")
        environment["MODELS_REPO"] = "http://\(Self.user):\(urlPassword)@127.0.0.1:\(port)/models"
        environment["GIT_TOKEN"] = wrongToken
        environment["ADMIN_TOKEN"] = "admin-token-for-credential-test"
        environment["LOG_LEVEL"] = "debug"
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        defer { kill(process.processIdentifier, SIGKILL) }

        var logs = ""
        var serverPort: Int?
        try await eventually("the server listens", timeout: .seconds(60)) {
            logs += String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
            if let range = logs.range(of: "msg=listening"), let portRange = logs[range.upperBound...].range(of: "port=") {
                serverPort = Int(logs[portRange.upperBound...].prefix { $0.isNumber })
            }
            return serverPort != nil
        }
        let client = HTTPClient(base: "http://127.0.0.1:\(serverPort!)")
        var readiness = try await client.get("/readyz")
        try await eventually("the refusal is reported", timeout: .seconds(60)) {
            readiness = try await client.get("/readyz")
            return readiness.error("message")?.jsonText.contains("refused the credentials") == true
        }
        #expect(readiness.status == 503)
        let index = try await client.get("/").text
        let sync = try await client.send("POST", "/-/sync", headers: ["Authorization": "Bearer admin-token-for-credential-test"])
        #expect(sync.status == 202)
        try await Task.sleep(for: .seconds(1))
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "SIGTERM stops the server cleanly")
        logs += String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(logs.contains("refused the credentials"))
        #expect(logs.contains("<redacted>@127.0.0.1"))
        for text in [logs, index, readiness.text] {
            let leaked = text.contains(urlPassword) || text.contains(wrongToken)
            #expect(!leaked, "a secret was printed or served")
        }
    }
}
