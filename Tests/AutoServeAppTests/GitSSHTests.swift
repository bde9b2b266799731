import AutoServeApp
import Foundation
import ServingCore
import Testing

/// An `ssh://` remote with `GIT_SSH_KEY`: a throwaway sshd on loopback that accepts one generated key.
@Suite(.serialized)
struct GitSSHTests {
    /// Starts sshd on a free port, trusting a fresh client key; returns its pid with the key's path.
    ///
    /// sshd runs as a daemon (its launcher exits at once) and is stopped through its pid file: with `-D` it
    /// would close the descriptor Foundation watches its children through, and Foundation would then wait
    /// for it forever, reaping no other child of the test process.
    static func sshd(port: Int? = nil, clientKey: String? = nil) async throws -> (pid: Int32, port: Int, key: String) {
        let folder = try Paths.temporaryFolder("sshd")
        let run = { (arguments: [String]) throws in
            let process = try startHelper("/usr/bin/ssh-keygen", arguments)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw TestFailure("ssh-keygen \(arguments) failed") }
        }
        try run(["-q", "-t", "ed25519", "-N", "", "-f", "\(folder)/host_key"])
        let key = clientKey ?? "\(folder)/client_key"
        if clientKey == nil { try run(["-q", "-t", "ed25519", "-N", "", "-f", key]) }
        try FileManager.default.copyItem(atPath: "\(key).pub", toPath: "\(folder)/authorized_keys")
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        let port = try port ?? freePort()
        try """
        Port \(port)
        ListenAddress 127.0.0.1
        HostKey \(folder)/host_key
        AuthorizedKeysFile \(folder)/authorized_keys
        PidFile \(folder)/sshd.pid
        StrictModes no
        UsePAM no
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        PermitRootLogin prohibit-password
        """.write(toFile: "\(folder)/sshd_config", atomically: true, encoding: .utf8)
        let launcher = try startHelper("/usr/sbin/sshd", ["-f", "\(folder)/sshd_config"])
        launcher.waitUntilExit()
        guard launcher.terminationStatus == 0 else { throw TestFailure("sshd did not start") }
        var pid: Int32?
        try await eventually("sshd writes its pid", timeout: .seconds(60)) {
            pid = (try? String(contentsOfFile: "\(folder)/sshd.pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            return pid != nil
        }
        return (pid!, port, key)
    }

    /// `make test` installs openssh-server; without it this test fails rather than being skipped.
    @Test func syncsOverSSHWithAKeyFile() async throws {
        let repository = try GitFixture.make(files: ["Labelled/etls.swift": GitFixture.labelModel("over-ssh")])
        let (sshd, port, key) = try await Self.sshd()
        var running = sshd
        defer { kill(running, SIGKILL) }
        let user = ProcessInfo.processInfo.environment["USER"] ?? NSUserName()
        // A state folder of its own (its pinned host keys are read below), the suite's plugin cache: on CI's loaded
        // machine a fresh SDK and model once took longer than the first sync's wait.
        let state = try Paths.temporaryFolder("ssh-state")
        let cacheKey = try String(contentsOfFile: Paths.sharedCacheKeyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try await withTestServer(
            try await TestServer.start(models: [:]) { configuration in
                configuration.modelsRepo = "ssh://\(user)@127.0.0.1:\(port)\(repository.path)"
                configuration.gitSSHKey = key
                configuration.stateDir = state
                configuration.cacheDir = "\(Paths.sharedState)/cache"
                configuration.cacheKey = Secret(cacheKey)
                configuration.adminToken = Secret("ssh-admin")
            }
        ) { server async throws in
            #expect(try await server.client.get("/Labelled").json?["label"] == .string("over-ssh"))
            #expect(try await server.client.get("/").json?["_server"]?["commit"] == .string(try repository.head))
            let pins = try String(contentsOfFile: "\(state)/ssh_known_hosts", encoding: .utf8)
            #expect(pins.hasPrefix("127.0.0.1 SHA256:"), "the host key is pinned on first use")

            // Another server with another host key on the same address: the pinned key refuses it.
            kill(running, SIGKILL)
            try await eventually("the first sshd is gone") { (try? RawHTTP.connected(port: port)).map { close($0) } == nil }
            running = try await Self.sshd(port: port, clientKey: key).pid
            try repository.write("Labelled/etls.swift", GitFixture.labelModel("impostor"))
            try repository.commit("impostor")
            #expect(try await server.client.send("POST", "/-/sync", headers: ["Authorization": "Bearer ssh-admin"]).status == 202)
            try await eventually("the changed host key is refused", timeout: .seconds(60)) {
                try await server.client.get("/").json?["_server"]?["last_sync"]?["message"]?.jsonText.contains("host key of 127.0.0.1 changed") == true
            }
            #expect(try await server.client.get("/Labelled").json?["label"] == .string("over-ssh"))
        }
    }
}
