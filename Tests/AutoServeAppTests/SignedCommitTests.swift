import AutoServeApp
import Foundation
import Logging
import ModelSource
import ServingCore
import Testing

/// `MODELS_REPO_ALLOWED_SIGNERS` (docs/git-sync.md, "Signed commits"): a commit serves only if an allowed SSH key signed
/// it, checked in Swift against signatures made by the real `git commit -S` and `ssh-keygen`.
@Suite(.serialized)
struct SignedCommitTests {
    static let adminToken = "admin-token-signed-commits"

    /// A new key pair made by ssh-keygen: the private key's path and the public key's line (`type base64 comment`).
    static func key(_ name: String, type: String = "ed25519", in folder: String) throws -> (path: String, publicKey: String) {
        let path = "\(folder)/\(name)"
        try run("/usr/bin/ssh-keygen", ["-q", "-t", type, "-N", "", "-C", name, "-f", path])
        return (path, try String(contentsOfFile: "\(path).pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Runs a command to its end; what it printed, or a failure naming it.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let result = try runWithInput(executable, arguments, input: Data())
        guard result.status == 0 else { throw TestFailure("\(executable) \(arguments.joined(separator: " ")) failed: \(result.output)") }
        return result.output
    }

    /// The key's fingerprint as `ssh-keygen -l` prints it.
    static func fingerprint(_ key: String) throws -> String {
        String(try run("/usr/bin/ssh-keygen", ["-l", "-E", "sha256", "-f", "\(key).pub"]).split(separator: " ")[1])
    }

    @Test func onlyCommitsSignedByAnAllowedKeyServe() async throws {
        let folder = try Paths.temporaryFolder("signers")
        let ana = try Self.key("ana", in: folder)
        let eve = try Self.key("eve", in: folder)
        let allowed = "\(folder)/allowed_signers"
        try "# who may push models\nana@example.com \(ana.publicKey)\n".write(toFile: allowed, atomically: true, encoding: .utf8)
        let repository = try GitFixture.make()
        try repository.write("Labelled/etls.swift", GitFixture.labelModel("signed by ana"))
        try repository.commit("first", signingKey: ana.path)
        let start = try await TestServer.start(models: [:]) { configuration in
            configuration.modelsRepo = repository.path
            configuration.modelsRepoAllowedSigners = allowed
            configuration.adminToken = Secret(Self.adminToken)
        }
        try await withTestServer(start) { server async throws in
            func label() async throws -> JSONValue? { try await server.client.get("/Labelled").json?["label"] }
            /// Pushes `text` as a commit (signed with `key`, if any), syncs, and returns the sync's message once it ended.
            func push(_ text: String, signingKey key: String?) async throws -> (result: String?, message: String, commit: String) {
                try repository.write("Labelled/etls.swift", GitFixture.labelModel(text))
                try repository.commit(text, signingKey: key)
                let answer = try await server.client.send("POST", "/-/sync", headers: ["Authorization": "Bearer \(Self.adminToken)"])
                let id = answer.json?["sync_id"]
                var sync: JSONValue?
                // The sync ended, and every model it changed came up (a refused commit changes none).
                try await eventually("the sync ends and its models come up") {
                    guard let index = try await server.client.get("/").json else { return false }
                    sync = index["_server"]?["last_sync"]
                    return sync?["id"] == id && HTTPClient.settled(index)
                }
                return (sync?["result"]?.string, sync?["message"]?.string ?? "", try repository.head)
            }
            #expect(try await label() == .string("signed by ana"))
            let serving = try await server.client.get("/").json?["_server"]?["commit"]

            let unsigned = try await push("unsigned", signingKey: nil)
            #expect(unsigned.result == "failure")
            #expect(unsigned.message.contains("commit \(unsigned.commit.prefix(12)) of main is not served: it is not signed"), "\(unsigned.message)")
            #expect(try await label() == .string("signed by ana"), "the commit serving stays")
            #expect(try await server.client.get("/").json?["_server"]?["commit"] == serving)
            let ready = try await server.client.get("/readyz")
            #expect(ready.status == 200)
            #expect(ready.text.contains("is not served: it is not signed"), "/readyz's body says why: \(ready.text)")

            let forged = try await push("signed by eve", signingKey: eve.path)
            #expect(forged.result == "failure")
            let eveFingerprint = try Self.fingerprint(eve.path)
            #expect(forged.message.contains("it is signed by the key \(eveFingerprint), which is not in \(allowed)"), "\(forged.message)")
            #expect(try await label() == .string("signed by ana"))

            let signed = try await push("signed by ana again", signingKey: ana.path)
            #expect(signed.result == "success", "\(signed.message)")
            #expect(try await label() == .string("signed by ana again"))
            #expect(try await server.client.get("/").json?["_server"]?["commit"] == .string(signed.commit))
        }
    }

    /// `autoserve check` with `MODELS_REPO_ALLOWED_SIGNERS` fails a checkout whose HEAD the server would refuse.
    @Test func checkSaysWhetherTheCommitWouldServe() async throws {
        let folder = try Paths.temporaryFolder("check-signers")
        let ana = try Self.key("ana", in: folder)
        let allowed = "\(folder)/allowed_signers"
        try "ana@example.com \(ana.publicKey)\n".write(toFile: allowed, atomically: true, encoding: .utf8)
        let repository = try GitFixture.make(models: ["Echo": "\(Paths.fixtures)/models/Echo"])
        var configuration = ServerConfiguration()
        configuration.stateDir = Paths.sharedState
        configuration.modelsRepoAllowedSigners = allowed
        configuration.helperExecutable = Paths.binary
        configuration.workerExecutable = Paths.workerBinary
        let unsigned = await ModelCheck.run(directory: repository.path, configuration: configuration, logger: Logger(label: "check"))
        #expect(!unsigned.passed)
        #expect(unsigned.text.contains("FAIL commit \(try repository.head.prefix(12)) would not be served: it is not signed"), "\(unsigned.text)")
        try repository.write("Echo/notes.md", "signed\n")
        try repository.commit("signed", signingKey: ana.path)
        let signed = await ModelCheck.run(directory: repository.path, configuration: configuration, logger: Logger(label: "check"))
        #expect(signed.passed, "\(signed.text)")
        #expect(signed.text.contains("ok   commit \(try repository.head.prefix(12)) signed by ana@example.com (\(try Self.fingerprint(ana.path)))"))
    }

    /// The verifier against signatures ssh-keygen makes (`-Y sign -n git`), for each key type it supports, and
    /// every way a signature can be wrong: the message changed, another namespace, another key, GPG, garbage.
    @Test func signaturesAreCheckedAsSSHKeygenMakesThem() throws {
        let folder = try Paths.temporaryFolder("sshsig")
        let payload = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@example.com> 0 +0000\n\nmodels\n"
        try payload.write(toFile: "\(folder)/payload", atomically: true, encoding: .utf8)
        for type in ["ed25519", "ecdsa"] {
            let key = try Self.key("signer-\(type)", type: type, in: folder)
            let stranger = try Self.key("stranger-\(type)", type: type, in: folder)
            let signers = try AllowedSigners.parse("ana@example.com \(key.publicKey)\n", path: "allowed_signers")
            try? FileManager.default.removeItem(atPath: "\(folder)/payload.sig")
            try Self.run("/usr/bin/ssh-keygen", ["-q", "-Y", "sign", "-n", "git", "-f", key.path, "\(folder)/payload"])
            let signature = try String(contentsOfFile: "\(folder)/payload.sig", encoding: .utf8)
            let fingerprint = try Self.fingerprint(key.path)
            #expect(
                CommitSignature.verify(signature, payload: Array(payload.utf8), signers: signers)
                    == .verified(principals: "ana@example.com", fingerprint: fingerprint))
            #expect(
                CommitSignature.verify(signature, payload: Array((payload + "x").utf8), signers: signers)
                    == .refused("its signature by the key \(fingerprint) does not match the commit", fingerprint: fingerprint))
            let strangers = try AllowedSigners.parse("eve@example.com \(stranger.publicKey)\n", path: "allowed_signers")
            #expect(
                CommitSignature.verify(signature, payload: Array(payload.utf8), signers: strangers)
                    == .refused("it is signed by the key \(fingerprint), which is not in allowed_signers", fingerprint: fingerprint))
            let fileOnly = try AllowedSigners.parse("ana@example.com namespaces=\"file\" \(key.publicKey)\n", path: "allowed_signers")
            guard case .refused(let reason, _) = CommitSignature.verify(signature, payload: Array(payload.utf8), signers: fileOnly) else {
                Issue.record("a key allowed for another namespace verified a commit")
                continue
            }
            #expect(reason.contains("not git"), "\(reason)")
            try? FileManager.default.removeItem(atPath: "\(folder)/payload.sig")
            try Self.run("/usr/bin/ssh-keygen", ["-q", "-Y", "sign", "-n", "file", "-f", key.path, "\(folder)/payload"])
            let otherNamespace = try String(contentsOfFile: "\(folder)/payload.sig", encoding: .utf8)
            guard case .refused(let namespace, _) = CommitSignature.verify(otherNamespace, payload: Array(payload.utf8), signers: signers) else {
                Issue.record("a signature for another namespace verified a commit")
                continue
            }
            #expect(namespace.contains("namespace 'file'"), "\(namespace)")
            // Every byte of the signature changed in turn: never verified, never a crash.
            let lines = signature.split(separator: "\n")
            let body = Array(Data(base64Encoded: lines.dropFirst().dropLast().joined())!)
            for index in stride(from: 0, to: body.count, by: 7) {
                var damaged = body
                damaged[index] ^= 0x41
                let armored = "-----BEGIN SSH SIGNATURE-----\n\(Data(damaged).base64EncodedString())\n-----END SSH SIGNATURE-----\n"
                if case .verified = CommitSignature.verify(armored, payload: Array(payload.utf8), signers: signers) {
                    Issue.record("byte \(index) changed and the signature still verified")
                }
            }
        }
        let signers = try AllowedSigners.parse("a@example.com \(try Self.key("k", in: folder).publicKey)\n", path: "f")
        #expect(
            CommitSignature.verify("-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n", payload: [], signers: signers)
                == .refused("it is signed with GPG, which this server does not verify; sign with an SSH key (git config gpg.format ssh)", fingerprint: nil))
        for garbage in [
            "", "-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----",
            "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH/////w==\n-----END SSH SIGNATURE-----",
        ] {
            guard case .refused = CommitSignature.verify(garbage, payload: [], signers: signers) else {
                Issue.record("\(garbage) verified")
                continue
            }
        }
        for text in [
            "", "# nobody\n", "a@example.com ssh-rsa AAAAB3NzaC1yc2E=\n", "a@example.com ssh-ed25519 not-base64\n",
            "a@example.com cert-authority ssh-ed25519 AAAA\n",
        ] {
            #expect(throws: SourceError.self, "\(text)") { try AllowedSigners.parse(text, path: "f") }
        }
    }
}
