import Foundation

/// A real git repository in a temporary folder, driven with the git command line (tests only: the server
/// itself talks to git through libgit2 alone).
struct GitFixture {
    let path: String

    /// A repository on `main` holding copies of the given model folders, committed.
    static func make(models: [String: String] = [:], files: [String: String] = [:]) throws -> GitFixture {
        let fixture = GitFixture(path: try Paths.temporaryFolder("repo") + "/models")
        try FileManager.default.createDirectory(atPath: fixture.path, withIntermediateDirectories: true)
        try fixture.git("init", "-q", "-b", "main")
        try fixture.git("config", "user.email", "tests@autoserve.invalid")
        try fixture.git("config", "user.name", "AutoServe tests")
        try fixture.write("README.md", "# models\n")
        for (name, source) in models { try fixture.copy(source, as: name) }
        for (name, text) in files { try fixture.write(name, text) }
        try fixture.commit("initial models")
        return fixture
    }

    func copy(_ source: String, as name: String) throws {
        try FileManager.default.copyItem(atPath: source, toPath: "\(path)/\(name)")
    }

    func write(_ relativePath: String, _ text: String) throws {
        let full = "\(path)/\(relativePath)"
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: true, encoding: .utf8)
    }

    func remove(_ relativePath: String) throws {
        try git("rm", "-r", "-q", relativePath)
    }

    /// Commits everything, signed with the SSH private key at `signingKey` when one is given (`git commit -S`, `gpg.format=ssh`).
    func commit(_ message: String, signingKey: String? = nil) throws {
        try git("add", "-A")
        guard let signingKey else {
            try git("commit", "-q", "-m", message)
            return
        }
        try git("-c", "gpg.format=ssh", "-c", "user.signingkey=\(signingKey)", "commit", "-q", "-S", "-m", message)
    }

    var head: String {
        get throws { try git("rev-parse", "HEAD").trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    /// The tree id of a folder at HEAD: the version the server must report for it.
    func treeID(_ folder: String) throws -> String {
        try git("rev-parse", "HEAD:\(folder)").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @discardableResult
    func git(_ arguments: String...) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: path)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestFailure("git \(arguments.joined(separator: " ")) failed: \(output)") }
        return output
    }

    /// A model whose answer is `{"label": "<label>"}`, to see which version serves.
    static func labelModel(_ label: String, compiles: Bool = true) -> String {
        """
        import AutoServeModel

        struct Labelled {
            init(path: String) {}

            func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
                \(compiles ? "" : "let broken: Int = \"not a number\"")
                return ["label": "\(label)"]
            }
        }
        """
    }
}

/// Starts a helper server (git daemon, the HTTP git server) that the test stops with `stopHelper`.
///
/// Its output goes nowhere, so it never holds the test runner's output open; it is stopped with SIGKILL,
/// because a child of this process inherits a signal mask that blocks SIGTERM.
func startHelper(_ executable: String, _ arguments: [String]) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    return process
}

func stopHelper(_ process: Process) {
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
}

/// `git-daemon` itself (not the `git` wrapper, whose child would outlive it).
func gitDaemonPath() throws -> String {
    let execPath = try GitFixture(path: NSTemporaryDirectory()).git("--exec-path").trimmingCharacters(in: .whitespacesAndNewlines)
    return "\(execPath)/git-daemon"
}

/// A port nobody listens on right now, for servers that cannot bind port 0 themselves (git daemon).
func freePort() throws -> Int {
    let server = Process()
    server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    server.arguments = ["python3", "-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"]
    let pipe = Pipe()
    server.standardOutput = pipe
    try server.run()
    server.waitUntilExit()
    return Int(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))!
}

/// Polls until `condition` holds, or fails the test after `timeout`: by default five minutes, as a server's first start
/// compiles the model SDK, which took more than two minutes while the other suites built at once on two cores.
func eventually(_ what: String, timeout: Duration = .seconds(300), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    // Once more at the deadline: on a loaded machine the sleep above can end long after it, and what was awaited may
    // have happened meanwhile.
    if try await condition() { return }
    throw TestFailure("timed out waiting until \(what)")
}
