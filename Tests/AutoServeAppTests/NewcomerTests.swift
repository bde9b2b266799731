import Foundation
import ServingCore
import Testing

/// The first commands a newcomer runs, with nothing configured: `make serve` from a fresh copy of the
/// repository (relative paths, an empty cache, no settings), the README's curl examples against it, and the
/// container's `docker run --env-file env` as an unprivileged user. The commands and examples are read from
/// the repository's own Makefile, README.md, env and Dockerfile, so the documents cannot drift.
@Suite(.serialized)
struct NewcomerTests {
    /// The settings that a developer's or CI's environment might carry and a newcomer's does not.
    static let unset = ["STATE_DIR", "MODELS_DIR", "MODELS_REPO", "SWIFTC", "baseUrl", "ADMIN_TOKEN", "WEBHOOK_SECRET", "INFERENCE_LOG"]

    @Test func makeServeFromAFreshCopyServesTheReadmeExamples() async throws {
        let copy = try Self.freshCopy()
        let server = try BinaryServer(environment: try Self.makeServeEnvironment(), removing: Self.unset, directory: copy)
        defer { server.stop() }
        let port = try await server.waitUntilListening()
        try await HTTPClient(base: "http://127.0.0.1:\(port)").waitForTheFirstSync(timeout: .seconds(600))
        try await Self.runReadmeExamples(port: port)
        #expect(FileManager.default.fileExists(atPath: "\(copy)/.autoserve/cache"), "the default STATE_DIR is ./.autoserve")
        await server.stopped()
        #expect(server.logs.contains("msg=path path=\(copy)/.autoserve setting=STATE_DIR"), "the resolved path is logged")
    }

    /// What the hook before a stop runs: `autoserve check models_serve` from the root, with a relative STATE_DIR.
    @Test func checkWithARelativeStateDirPasses() throws {
        let copy = try Self.freshCopy()
        let result = try Self.runBinary(["check", "models_serve"], environment: ["STATE_DIR": ".autoserve-newcomer"], directory: copy)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("4 model(s) passed"), "\(result.output)")
    }

    /// `docker run --env-file env`: the env file's lines taken literally as Docker takes them, the image's
    /// settings, a non-root user (uid 10001, as the image's), a fresh state folder; then the README's curls
    /// and the image's HEALTHCHECK command. The server's /proc files belong to root: no process of its user
    /// (a model's worker among them) can read its environment.
    @Test func theEnvFileServesAsAnUnprivilegedUser() async throws {
        // The image's ENV first, then the env file over it, as `docker run --env-file` does.
        var environment = try Self.dockerfileEnvironment().merging(try Self.dockerEnvFile("\(Paths.repository)/env")) { $1 }
        #expect(environment["PORT"] == "8080", "the image and the env file listen where uid 10001 may")
        let state = try Paths.temporaryFolder("env-file-state")
        let home = try Paths.temporaryFolder("env-file-home")
        let models = try Paths.temporaryFolder("env-file-models") + "/models_serve"
        try FileManager.default.copyItem(atPath: Paths.modelsServe, toPath: models)
        // Where the image puts them; PORT 0 for a free port on this machine.
        environment["STATE_DIR"] = state
        environment["MODELS_DIR"] = models
        environment["HOME"] = home
        environment["PORT"] = "0"
        var launcher: [String] = []
        let uid: uid_t = getuid() == 0 ? 10001 : getuid()
        if getuid() == 0 {
            for folder in [state, home, (state as NSString).deletingLastPathComponent] { chown(folder, 10001, 10001) }
            launcher = ["/usr/bin/setpriv", "--reuid=10001", "--regid=10001", "--clear-groups", "--"]
        }
        let server = try BinaryServer(environment: environment, removing: Self.unset, directory: home, launcher: launcher)
        defer { server.stop() }
        let port = try await server.waitUntilListening()
        try await HTTPClient(base: "http://127.0.0.1:\(port)").waitForTheFirstSync(timeout: .seconds(600))
        try await Self.runReadmeExamples(port: port)
        let healthcheck = try Self.dockerHealthcheck()
        #expect(try Self.shell("PORT=\(port) " + healthcheck).status == 0, "the HEALTHCHECK command: \(healthcheck)")
        #expect(try Self.shell("PORT=1 " + healthcheck).status != 0, "the HEALTHCHECK fails where nothing listens")

        var owner = stat()
        #expect(stat("/proc/\(server.process.processIdentifier)/environ", &owner) == 0)
        let status = (try? String(contentsOfFile: "/proc/\(server.process.processIdentifier)/status", encoding: .utf8)) ?? ""
        #expect(status.contains("Uid:\t\(uid)\t"), "the server runs as uid \(uid)")
        #expect(owner.st_uid == 0, "the server is not dumpable: its /proc files belong to root, not to uid \(uid)")
    }

    /// A state folder uid 10001 cannot write (a root-owned host folder mounted on the volume): exit 78 at
    /// start, naming the folder, the user and the fix, not a server that looks healthy and serves nothing.
    @Test func anUnwritableStateDirStopsTheServerWithTheFix() throws {
        let state = try Paths.temporaryFolder("root-owned-state")
        chmod(state, 0o755)
        let result = try Self.runAsUnprivileged(["serve"], environment: ["STATE_DIR": state, "MODELS_DIR": Paths.modelsServe])
        #expect(result.status == 78, "\(result.output)")
        #expect(result.output.contains("STATE_DIR=\(state) cannot be written by uid \(Self.unprivileged)"), "\(result.output)")
        #expect(result.output.contains("chown \(Self.unprivileged):"), "\(result.output)")
    }

    /// Port 80 as uid 10001: exit 78 with the port, the user and the fix, not a bare `bind(...)` error.
    @Test func aRefusedPortIsNamedWithTheFix() throws {
        let state = try Paths.temporaryFolder("refused-port-state")
        chown(state, Self.unprivileged, Self.unprivileged)
        let result = try Self.runAsUnprivileged(["serve"], environment: ["STATE_DIR": state, "MODELS_DIR": Paths.modelsServe, "PORT": "80"])
        #expect(result.status == 78, "\(result.output)")
        #expect(result.output.contains("cannot listen on 127.0.0.1:80 as uid \(Self.unprivileged)"), "\(result.output)")
        #expect(result.output.contains("Set PORT=8080"), "\(result.output)")
    }

    /// The uid the tests run the server as when they run as root, like the image's user.
    static let unprivileged: uid_t = getuid() == 0 ? 10001 : getuid()

    /// The binary run to its end as uid 10001 (when the tests run as root), with everything it prints.
    static func runAsUnprivileged(_ arguments: [String], environment: [String: String]) throws -> (status: Int32, output: String) {
        try runBinary(arguments, environment: environment.merging(["HOST": "127.0.0.1", "PORT": "0"]) { given, _ in given }, unprivileged: true)
    }

    /// The binary run to its end with a newcomer's environment plus `environment`, with everything it prints.
    static func runBinary(
        _ arguments: [String], environment extra: [String: String], directory: String = NSTemporaryDirectory(), unprivileged: Bool = false
    ) throws -> (status: Int32, output: String) {
        let process = Process()
        if unprivileged, getuid() == 0 {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=10001", "--regid=10001", "--clear-groups", "--", Paths.binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: Paths.binary)
            process.arguments = arguments
        }
        var environment = ProcessInfo.processInfo.environment
        for name in unset { environment[name] = nil }
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    // MARK: - The repository's own documents

    /// The models folder and the documents, copied to a new folder: a clone as a newcomer has it.
    static func freshCopy() throws -> String {
        let copy = try Paths.temporaryFolder("fresh-clone")
        for item in ["models_serve", "README.md", "Makefile", "deploy", "env", "Dockerfile"] {
            try FileManager.default.copyItem(atPath: "\(Paths.repository)/\(item)", toPath: "\(copy)/\(item)")
        }
        return copy
    }

    /// The `KEY=value` words before the binary on `make serve`'s recipe line (PORT is chosen by the test).
    static func makeServeEnvironment() throws -> [String: String] {
        let makefile = try String(contentsOfFile: "\(Paths.repository)/Makefile", encoding: .utf8)
        let lines = makefile.components(separatedBy: "\n")
        guard let target = lines.firstIndex(where: { $0.hasPrefix("serve:") }), target + 1 < lines.count else {
            throw TestFailure("the Makefile has no serve target")
        }
        var environment: [String: String] = [:]
        for word in lines[target + 1].split(whereSeparator: { $0 == " " || $0 == "\t" }) {
            guard let equals = word.firstIndex(of: "=") else { break }
            environment[String(word[..<equals])] = String(word[word.index(after: equals)...])
        }
        environment["PORT"] = nil
        #expect(environment["MODELS_DIR"] != nil, "make serve names the models folder")
        return environment
    }

    /// The env file as `docker run --env-file` reads it: `KEY=value` taken literally (empty values kept),
    /// comments and blank lines skipped, a bare `KEY` taken from the caller's environment.
    static func dockerEnvFile(_ path: String) throws -> [String: String] {
        var environment: [String: String] = [:]
        for line in try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n") {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { continue }
            if let equals = trimmed.firstIndex(of: "=") {
                environment[String(trimmed[..<equals])] = String(trimmed[trimmed.index(after: equals)...])
            } else if let value = ProcessInfo.processInfo.environment[String(trimmed)] {
                environment[String(trimmed)] = value
            }
        }
        return environment
    }

    /// The `ENV KEY=value …` line of the Dockerfile's runtime stage.
    static func dockerfileEnvironment() throws -> [String: String] {
        let dockerfile = try String(contentsOfFile: "\(Paths.repository)/Dockerfile", encoding: .utf8)
        var environment: [String: String] = [:]
        for line in dockerfile.components(separatedBy: "\n") where line.hasPrefix("ENV ") {
            for pair in line.dropFirst(4).split(separator: " ") {
                guard let equals = pair.firstIndex(of: "=") else { continue }
                environment[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
        }
        return environment
    }

    /// The command of the Dockerfile's HEALTHCHECK as a shell command line, `autoserve` being the binary built here.
    static func dockerHealthcheck() throws -> String {
        let dockerfile = try String(contentsOfFile: "\(Paths.repository)/Dockerfile", encoding: .utf8)
            .replacingOccurrences(of: "\\\n", with: " ")
        guard let line = dockerfile.components(separatedBy: "\n").first(where: { $0.hasPrefix("HEALTHCHECK") }),
            let command = line.range(of: " CMD ")
        else { throw TestFailure("the Dockerfile has no HEALTHCHECK") }
        var text = String(line[command.upperBound...]).trimmingCharacters(in: .whitespaces)
        // The exec form, ["curl", "-f", …], as the words of a shell command.
        if text.hasPrefix("[") {
            let words = try JSONParser.parse(Array(text.utf8))
            guard case .array(let elements) = words else { throw TestFailure("HEALTHCHECK CMD is not a list") }
            text = elements.compactMap { if case .string(let word) = $0 { "'\(word)'" } else { nil } }.joined(separator: " ")
        }
        return text.replacingOccurrences(of: "'autoserve'", with: "'\(Paths.binary)'")
    }

    /// Each `curl` line of the README's "Try it" section, with the answer shown on the comment line under it.
    static func readmeExamples() throws -> [(command: String, shown: String?)] {
        let readme = try String(contentsOfFile: "\(Paths.repository)/README.md", encoding: .utf8)
        guard let start = readme.range(of: "## Try it") else { throw TestFailure("README.md has no 'Try it' section") }
        let section = readme[start.upperBound...].prefix { _ in true }
        let lines = section.components(separatedBy: "\n").prefix { !$0.hasPrefix("## ") || $0 == "## Try it" }
        var examples: [(String, String?)] = []
        for (index, line) in lines.enumerated() where line.hasPrefix("curl ") {
            let command = line.components(separatedBy: "   #").first!.trimmingCharacters(in: .whitespaces)
            let next = index + 1 < lines.count ? lines[index + 1] : ""
            let shown = next.hasPrefix("# {") ? String(next.dropFirst(2)).components(separatedBy: "  ").first : nil
            examples.append((command, shown))
        }
        return examples
    }

    /// Runs every README example with curl against `port`: each answers 200, and each answer shown in the
    /// README holds (a subset match; `{...}` stands for any object).
    static func runReadmeExamples(port: Int) async throws {
        let examples = try readmeExamples()
        #expect(examples.count >= 5, "the README shows its curl examples")
        for (command, shown) in examples {
            let local = command.replacingOccurrences(of: "localhost:8080", with: "127.0.0.1:\(port)")
            let result = try shell(local + " -o /dev/stdout -w '\\n%{http_code}'")
            let body = result.output.components(separatedBy: "\n").dropLast().joined(separator: "\n")
            let status = result.output.components(separatedBy: "\n").last ?? ""
            #expect(status == "200", "\(command) answered \(status): \(body)")
            guard let shown else { continue }
            let expected = try JSONParser.parse(Array(shown.replacingOccurrences(of: "{...}", with: "{}").utf8))
            let actual = try JSONParser.parse(Array(body.utf8))
            #expect(actual.contains(expected), "\(command): the README shows \(shown), the server answered \(body)")
            if case .object(let members) = expected, case .object(let answered) = actual {
                #expect(Set(answered.keys) == Set(members.keys), "\(command): the README shows \(shown), the server answered \(body)")
            }
        }
    }

    static func shell(_ command: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }
}
