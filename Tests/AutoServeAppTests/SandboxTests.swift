import Foundation
import Logging
import PluginBuilder
import PluginRuntime
import ServingCore
import Testing

@testable import AutoServeApp

/// Every worker runs confined (docs/operations.md, "The sandbox"): the Hostile fixture tries each escape of that table and
/// answers how each went. Confined, every one fails with EPERM or EACCES and the model still serves, beside the
/// others; with `MODEL_SANDBOX=off` each one works, so these tests can fail.
@Suite(.serialized)
struct SandboxTests {
    /// What Hostile is asked to reach: a secret file outside every model, another model's source, the plugin
    /// cache, a folder outside, the server's port and another model's worker.
    struct Targets {
        let folder: String
        let secret: String
        let outside: String
        let cache: String

        init(cache: String) throws {
            folder = try Paths.temporaryFolder("sandbox-targets")
            secret = "\(folder)/id_ed25519"
            try "-----BEGIN OPENSSH PRIVATE KEY----- not a real key\n".write(toFile: secret, atomically: true, encoding: .utf8)
            outside = "\(folder)/outside"
            try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
            self.cache = cache
        }

        var planted: String { "\(cache)/planted.so" }

        func row(modelsDirectory: String, port: Int, neighbourPid: Int) -> String {
            let variables: [String: JSONValue] = [
                "secret": .string(secret), "neighbour_source": .string("\(modelsDirectory)/Iris/etls.swift"), "cache": .string(cache),
                "outside": .string(outside), "port": .number(Double(port)), "neighbour_pid": .number(Double(neighbourPid)),
            ]
            return "{\"variables\": \(JSONValue.object(variables).jsonText)}"
        }
    }

    /// The escapes Hostile reports (every key of its answer but `environment` and `tmpdir`).
    static let escapes: Set<String> = [
        "read_secret", "read_neighbour_source", "read_server_cmdline", "write_cache", "write_outside", "write_own_folder", "chmod_own_folder",
        "connect_server", "signal_server", "signal_process_group", "run_shell", "fork", "read_neighbour_memory",
    ]

    /// Hostile's answer to one row that names every target, with the server's index.
    static func tryEscapes(_ server: TestServer, targets: Targets) async throws -> (answer: JSONValue, index: JSONValue) {
        let index = try await server.client.get("/")
        guard let index = index.json, case .array(let pids)? = index["Echo"]?["workers"]?["pids"], case .number(let pid)? = pids.first else {
            throw TestFailure("Echo has no worker: \(try await server.client.get("/").text)")
        }
        let answer = try await server.client.post("/Hostile", targets.row(modelsDirectory: server.modelsDirectory, port: server.port, neighbourPid: Int(pid)))
        guard answer.status == 200, let json = answer.json else { throw TestFailure("Hostile answered \(answer.status): \(answer.text)") }
        return (json, index)
    }

    static let models = [
        "Hostile": "\(Paths.fixtures)/models/Hostile", "Echo": "\(Paths.fixtures)/models/Echo", "Iris": "\(Paths.modelsServe)/Iris",
        "Unruly": "\(Paths.fixtures)/models/Unruly",
    ]

    /// Hostile's code under another name, with a model.yaml that asks the sandbox for the network and the targets' folder.
    static func asking(_ name: String, targets: Targets) throws -> String {
        let folder = try Paths.temporaryFolder("sandbox-request") + "/\(name)"
        try FileManager.default.copyItem(atPath: "\(Paths.fixtures)/models/Hostile", toPath: folder)
        try "description: asks for more than its sandbox\nsandbox:\n  network: true\n  read: [\(targets.folder)]\n".write(
            toFile: "\(folder)/model.yaml", atomically: true, encoding: .utf8)
        return folder
    }

    @Test func aHostileModelIsDeniedEveryEscapeAndStillServes() async throws {
        let support = SandboxSupport.current
        #expect(support.landlockABI >= 6 && support.seccomp, "this kernel lacks a layer the sandbox needs: \(support.missing)")
        let targets = try Targets(cache: "\(Paths.sharedState)/cache")
        var tmpdir: String?
        var models = Self.models
        models["Granted"] = try Self.asking("Granted", targets: targets)
        models["Greedy"] = try Self.asking("Greedy", targets: targets)
        let start = try await TestServer.start(models: models) { $0.sandboxAllow = ["Granted": SandboxGrant(network: true, read: [targets.folder])] }
        try await withTestServer(start) { server async throws in
            let (answer, index) = try await Self.tryEscapes(server, targets: targets)
            for escape in Self.escapes {
                let outcome = answer[escape]?.string ?? "missing"
                #expect(outcome == "EPERM" || outcome == "EACCES", "\(escape): \(outcome)")
            }
            #expect(answer["write_tmpdir"] == .string("ok"), "a model may write its own temporary folder")
            tmpdir = answer["tmpdir"]?.string
            #expect(tmpdir?.contains("/autoserve-worker-") == true, "TMPDIR is the worker's own folder: \(tmpdir ?? "none")")
            #expect(tmpdir.map { FileManager.default.fileExists(atPath: "\($0)/scratch") } == true)
            #expect(!FileManager.default.fileExists(atPath: targets.planted), "nothing appears in CACHE_DIR")
            #expect(try FileManager.default.contentsOfDirectory(atPath: targets.outside).isEmpty, "nothing appears outside")
            #expect(!FileManager.default.fileExists(atPath: "\(server.modelsDirectory)/Hostile/rewritten.swift"))
            let layers = "strict (landlock \(support.landlockABI), limits, seccomp)"
            for model in ["Hostile", "Echo", "Iris"] { #expect(index[model]?["sandbox"] == .string(layers), "\(model): \(index[model] ?? .null)") }
            // The others are unaffected, and Hostile serves on.
            #expect(try await server.client.post("/Iris", Rows.setosa).json?["iris_class"] == .string("setosa"))
            #expect(try await server.client.post("/Echo", #"{"variables": {"a": 1}}"#).status == 200)
            #expect(try await Self.tryEscapes(server, targets: targets).answer["fork"] == .string("EPERM"))
            // A confined worker that traps dies alone and comes back confined, as an unconfined one does.
            #expect(try await server.client.post("/Unruly", #"{"variables": {"mode": "crash"}}"#).status == 503)
            try await eventually("Unruly answers again", timeout: .seconds(60)) {
                try await server.client.post("/Unruly", #"{"variables": {"mode": "fine"}}"#).status == 200
            }
            #expect(try await server.client.get("/").json?["Unruly"]?["sandbox"] == .string(layers))

            // What SANDBOX_ALLOW grants a model that asks, it gets, and nothing more.
            let granted = try await server.client.post(
                "/Granted", targets.row(modelsDirectory: server.modelsDirectory, port: server.port, neighbourPid: Int(getpid())))
            #expect(granted.json?["read_secret"] == .string("ok"), "\(granted.text)")
            #expect(granted.json?["connect_server"] == .string("ok"), "\(granted.text)")
            for escape in Self.escapes.subtracting(["read_secret", "connect_server"]) {
                let outcome = granted.json?[escape]?.string ?? "missing"
                #expect(outcome == "EPERM" || outcome == "EACCES", "Granted, \(escape): \(outcome)")
            }
            #expect(
                index["Granted"]?["sandbox"] == .string("strict (landlock \(support.landlockABI), limits, seccomp; granted network, read \(targets.folder))"))
            // A model that asks for what is not granted does not serve, and its error names the request and both fixes.
            #expect(index["Greedy"]?["state"] == .string("failed"), "\(index["Greedy"] ?? .null)")
            let reason = index["Greedy"]?["last_error"]?["message"]?.string ?? ""
            #expect(reason.contains("SANDBOX_ALLOW does not grant Greedy"), "\(reason)")
            #expect(reason.contains("Greedy:network,Greedy:read=\(targets.folder)"), "\(reason)")
        }
        // The server has stopped; each worker's exit is reaped (and its folder removed) on an event loop soon after.
        let folder = try #require(tmpdir)
        try await eventually("the worker's temporary folder is removed when it stops", timeout: .seconds(30)) {
            !FileManager.default.fileExists(atPath: folder)
        }
    }

    /// As the container's user (uid 10001 when the tests run as root, as the image runs): the binary as users start
    /// it, a state folder of its own, and targets that user owns, so that each denial is the sandbox's and not the
    /// file permissions'.
    @Test func asTheContainersUserEveryEscapeIsDeniedToo() async throws {
        let user: uid_t = getuid() == 0 ? 10001 : getuid()
        let state = try Paths.temporaryFolder("sandbox-uid-state")
        let home = try Paths.temporaryFolder("sandbox-uid-home")
        let targets = try Targets(cache: "\(state)/cache")
        for path in [state, home, targets.folder, targets.secret, targets.outside] { chown(path, user, user) }
        let models = try Paths.modelsFolder([
            "Hostile": "\(Paths.fixtures)/models/Hostile", "Echo": "\(Paths.fixtures)/models/Echo", "Iris": "\(Paths.modelsServe)/Iris",
        ])
        let server = try BinaryServer(
            environment: ["MODELS_DIR": models, "STATE_DIR": state, "HOME": home], directory: home,
            launcher: getuid() == 0 ? ["/usr/bin/setpriv", "--reuid=10001", "--regid=10001", "--clear-groups", "--"] : [])
        defer { server.stop() }
        let port = try await server.waitUntilListening()
        let client = HTTPClient(base: "http://127.0.0.1:\(port)")
        try await client.waitForTheFirstSync(timeout: .seconds(600))
        let index = try await client.get("/")
        guard case .array(let pids)? = index.json?["Echo"]?["workers"]?["pids"], case .number(let pid)? = pids.first else {
            throw TestFailure("Echo has no worker: \(index.text)")
        }
        let answer = try await client.post("/Hostile", targets.row(modelsDirectory: models, port: port, neighbourPid: Int(pid)))
        #expect(answer.status == 200, "\(answer.text)")
        for escape in Self.escapes {
            let outcome = answer.json?[escape]?.string ?? "missing"
            #expect(outcome == "EPERM" || outcome == "EACCES", "uid \(user), \(escape): \(outcome)")
        }
        #expect(answer.json?["write_tmpdir"] == .string("ok"))
        #expect(!FileManager.default.fileExists(atPath: targets.planted))
        #expect(try FileManager.default.contentsOfDirectory(atPath: targets.outside).isEmpty)
        let status = (try? String(contentsOfFile: "/proc/\(Int(pid))/status", encoding: .utf8)) ?? ""
        #expect(status.contains("Uid:\t\(user)\t"), "the worker runs as uid \(user)")
    }

    /// The same model unconfined: each escape works (the planted plugin is removed again).
    @Test func withTheSandboxOffEachEscapeWorks() async throws {
        let targets = try Targets(cache: "\(Paths.sharedState)/cache")
        defer { try? FileManager.default.removeItem(atPath: targets.planted) }
        let start = try await TestServer.start(models: Self.models) { $0.modelSandbox = .off }
        try await withTestServer(start) { server async throws in
            let (answer, index) = try await Self.tryEscapes(server, targets: targets)
            for escape in Self.escapes { #expect(answer[escape] == .string("ok"), "\(escape): \(answer[escape] ?? .null)") }
            #expect(FileManager.default.fileExists(atPath: targets.planted))
            #expect(try FileManager.default.contentsOfDirectory(atPath: targets.outside) == ["escaped"])
            #expect(index["Hostile"]?["sandbox"] == .string("off"))
        }
    }

    /// A worker sees only PATH, HOME, LANG, LC_*, TZ, its TMPDIR and the names of MODEL_ENV.
    @Test func theEnvironmentIsAnAllowlist() {
        let server = [
            "PATH": "/bin", "HOME": "/home/a", "LANG": "C.UTF-8", "LC_ALL": "C", "TZ": "UTC", "AWS_SECRET_ACCESS_KEY": "a", "DATABASE_URL": "b",
            "INFERENCE_LOG": "/var/log/rows.jsonl", "FEATURE_STORE_URL": "c", "ADMIN_TOKEN": "d",
        ]
        #expect(
            ServerConfiguration.workerEnvironment(server, passing: ["FEATURE_STORE_URL"]) == [
                "PATH": "/bin", "HOME": "/home/a", "LANG": "C.UTF-8", "LC_ALL": "C", "TZ": "UTC", "FEATURE_STORE_URL": "c",
            ])
    }

    /// The compiler runs confined too: a `swiftc` that tries to read a key outside its inputs and to write outside
    /// its build folder (as code from the repository would, through a compiler bug or a macro) is refused both, and
    /// with the sandbox off it does both, so the test can fail.
    @Test(arguments: [SandboxPolicy.Mode.strict, .off])
    func theCompilerReadsOnlyItsInputs(mode: SandboxPolicy.Mode) async throws {
        let folder = try Paths.temporaryFolder("confined-compiler")
        let secret = "\(folder)/deploy_key"
        try "compiler-must-not-read-this-\(mode)".write(toFile: secret, atomically: true, encoding: .utf8)
        // The toolchain's folder is what the compiler may read: the wrapper's own, beside the key but not above it.
        let bin = "\(folder)/toolchain/usr/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let real = try #require(
            ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map { "\($0)/swiftc" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        )
        try """
        #!/bin/sh
        case "$1" in -version|--version|-print-target-info) exec \(real) "$@" ;; esac
        echo "reading the key: $(cat \(secret) 2>&1)"
        if echo planted > \(folder)/planted 2>/dev/null; then echo "writing outside: done"; else echo "writing outside: refused"; fi
        exit 1
        """.write(toFile: "\(bin)/swiftc", atomically: true, encoding: .utf8)
        chmod("\(bin)/swiftc", 0o755)
        let start = try await TestServer.start(models: ["Echo": "\(Paths.fixtures)/models/Echo"]) { configuration in
            configuration.stateDir = try! Paths.temporaryFolder("confined-compiler-state")
            configuration.swiftc = "\(bin)/swiftc"
            configuration.modelSandbox = mode
        }
        try await withTestServer(start) { server async throws in
            let echo = try await server.client.get("/").json?["Echo"]
            #expect(echo?["state"] == .string("failed"))
            let log = echo?["last_error"]?["build_log"]?.string ?? ""
            if mode == .off {
                #expect(log.contains("compiler-must-not-read-this-off"), "\(log)")
                #expect(log.contains("writing outside: done"), "\(log)")
                #expect(FileManager.default.fileExists(atPath: "\(folder)/planted"))
            } else {
                #expect(log.contains("reading the key: cat: \(secret): Permission denied"), "\(log)")
                #expect(log.contains("writing outside: refused"), "\(log)")
                #expect(!log.contains("compiler-must-not-read-this"))
                #expect(!FileManager.default.fileExists(atPath: "\(folder)/planted"))
            }
        }
    }

    /// The tricks that would make a compile read outside the folder fail whether or not the compiler is confined: a
    /// symlink out of the folder is not exported, a module map in the folder is not on the compiler's search path.
    @Test func aFolderThatReachesOutsideFailsToCompileAndLeaksNothing() async throws {
        let outside = try Paths.temporaryFolder("compile-leak-target")
        try "let leakedSecret = \"compile-time-secret\"\n".write(toFile: "\(outside)/secret.swift", atomically: true, encoding: .utf8)
        try "static const char *leak = \"header-secret\";\n".write(toFile: "\(outside)/secret.h", atomically: true, encoding: .utf8)
        let models = try Paths.temporaryFolder("compile-leak-models")
        for name in ["Linked", "Mapped"] { try FileManager.default.createDirectory(atPath: "\(models)/\(name)", withIntermediateDirectories: true) }
        try FileManager.default.createSymbolicLink(atPath: "\(models)/Linked/Secret.swift", withDestinationPath: "\(outside)/secret.swift")
        try """
        import AutoServeModel

        struct Linked {
            init(path: String) {}
            func transform_predict(_ variables: [String: JSON]) -> [String: JSON] { ["secret": .string(leakedSecret)] }
        }
        """.write(toFile: "\(models)/Linked/etls.swift", atomically: true, encoding: .utf8)
        try "module Leak {\n  header \"\(outside)/secret.h\"\n  export *\n}\n".write(
            toFile: "\(models)/Mapped/module.modulemap", atomically: true, encoding: .utf8)
        try """
        import AutoServeModel
        import Leak

        struct Mapped {
            init(path: String) {}
            func transform_predict(_ variables: [String: JSON]) -> [String: JSON] { ["secret": .string(String(cString: leak))] }
        }
        """.write(toFile: "\(models)/Mapped/etls.swift", atomically: true, encoding: .utf8)
        let start = try await TestServer.start(models: [:]) { $0.modelsDir = models }
        try await withTestServer(start) { server async throws in
            let index = try await server.client.get("/")
            for name in ["Linked", "Mapped"] {
                #expect(index.json?[name]?["state"] == .string("failed"), "\(name): \(index.text)")
                let answer = try await server.client.post("/\(name)", #"{"variables": {}}"#)
                #expect(answer.status == 503)
            }
            #expect(!index.text.contains("compile-time-secret") && !index.text.contains("header-secret"))
        }
    }

    /// `MODEL_SANDBOX=required` where a layer is missing, and with in-process models, stops the server at start
    /// (exit 78) naming what is missing and the fix; `strict` warns and goes on; every layer present passes.
    @Test func requiredRefusesToStartWithoutEveryLayer() throws {
        var required = ServerConfiguration()
        required.modelSandbox = .required
        let logger = Logger(label: "sandbox-check")
        let kernels: [(SandboxSupport, String)] = [
            (SandboxSupport(landlockABI: 0, seccomp: true), "Landlock (files; Linux 5.13"),
            (SandboxSupport(landlockABI: 3, seccomp: true), "Landlock ABI 4 (TCP; Linux 6.7)"),
            (SandboxSupport(landlockABI: 5, seccomp: true), "Landlock ABI 6 (signals and abstract Unix sockets; Linux 6.12)"),
            (SandboxSupport(landlockABI: 7, seccomp: false), "seccomp (a kernel built with CONFIG_SECCOMP_FILTER)"),
        ]
        for (support, missing) in kernels {
            do {
                try StartupChecks.sandbox(required, support: support, logger: logger)
                Issue.record("required started without \(missing)")
            } catch {
                #expect(error.message.contains(missing) && error.message.contains("MODEL_SANDBOX=strict"), "\(error.message)")
            }
            var strict = required
            strict.modelSandbox = .strict
            #expect(throws: Never.self) { try StartupChecks.sandbox(strict, support: support, logger: logger) }
        }
        #expect(throws: Never.self) { try StartupChecks.sandbox(required, support: SandboxSupport(landlockABI: 7, seccomp: true), logger: logger) }
        var inProcess = required
        inProcess.modelIsolation = .inprocess
        #expect(throws: ConfigurationError.self) {
            try StartupChecks.sandbox(inProcess, support: SandboxSupport(landlockABI: 7, seccomp: true), logger: logger)
        }
    }

    @Test func sandboxRequestsAndGrantsAreChecked() throws {
        let manifest = try ModelManifest.parse("sandbox:\n  network: true\n  read: [/data/reference, /srv/lookup]\n", file: "M/model.yaml")
        #expect(manifest.sandbox == SandboxRequest(network: true, read: ["/data/reference", "/srv/lookup"]))
        for text in ["sandbox: {net: true}", "sandbox: {network: 1}", "sandbox: {read: [data]}", "sandbox: {read: [/data/../etc]}", "sandbox: {read: /data}"] {
            #expect(throws: ManifestError.self, "\(text)") { try ModelManifest.parse(text, file: "M/model.yaml") }
        }
        let allowed = try ServerConfiguration.fromEnvironment(["SANDBOX_ALLOW": "A:network, B:read=/data/ref,B:read=/srv"]).sandboxAllow
        #expect(allowed == ["A": SandboxGrant(network: true), "B": SandboxGrant(read: ["/data/ref", "/srv"])])
        #expect(allowed["B"]?.allowsReading("/data/ref/table.csv") == true)
        #expect(allowed["B"]?.allowsReading("/data/reference") == false)
        for value in ["A", "A:write=/x", "A:read=relative", "A:read=/data/../etc", ":network"] {
            #expect(throws: ConfigurationError.self, "\(value)") { try ServerConfiguration.fromEnvironment(["SANDBOX_ALLOW": value]) }
        }
    }

    @Test func modelEnvRefusesSecretsAndNonNames() throws {
        #expect(try ServerConfiguration.fromEnvironment(["MODEL_ENV": "FEATURE_STORE_URL, REGION"]).modelEnvironment == ["FEATURE_STORE_URL", "REGION"])
        for value in ["ADMIN_TOKEN", "A,GIT_TOKEN", "MODELS_REPO", "1ABC", "A=B", "A B"] {
            #expect(throws: ConfigurationError.self, "\(value)") { try ServerConfiguration.fromEnvironment(["MODEL_ENV": value]) }
        }
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.fromEnvironment(["MODEL_SANDBOX": "loose"]) }
        #expect(try ServerConfiguration.fromEnvironment(["MODEL_SANDBOX": "Required"]).modelSandbox == .required)
    }
}
