import Crypto
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Replicas that share one `CACHE_DIR` (docs/deployment.md, "Running a fleet"): each version is compiled once whichever replica
/// needs it first, a replica killed in the middle of a build leaves nothing another one loads broken, and a
/// damaged entry is rebuilt.
///
/// A `swiftc` wrapper writes one line per compile (`<pid> <module>`) to a log, then runs the real compiler.
@Suite(.serialized)
struct SharedCacheTests {
    /// A folder with the wrapper and its log; `holdFirst` makes the first compile of a model wait for `release`.
    struct Compiler {
        let folder: String
        var path: String { "\(folder)/swiftc" }
        var log: String { "\(folder)/compiles.log" }
        var started: String { "\(folder)/started" }
        var release: String { "\(folder)/release" }

        init(holdFirst: Bool = false) throws {
            folder = try Paths.temporaryFolder("swiftc-wrapper")
            let real = try #require(
                ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map { "\($0)/swiftc" }
                    .first { FileManager.default.isExecutableFile(atPath: $0) })
            let hold =
                holdFirst
                ? """
                if [ "${module#AS_}" != "$module" ] && mkdir \(folder)/first 2>/dev/null; then
                    echo $$ > \(started)
                    while [ ! -e \(release) ]; do sleep 0.05; done
                fi
                """ : ""
            try """
            #!/bin/sh
            module=; previous=
            for argument in "$@"; do
                [ "$previous" = -module-name ] && module=$argument
                previous=$argument
            done
            [ -n "$module" ] && echo "$$ $module" >> \(log)
            \(hold)
            exec \(real) "$@"
            """.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o755)
        }

        /// The modules compiled so far, one entry per compile.
        var compiles: [String] {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map { String($0.split(separator: " ").last ?? "") }
        }
    }

    static func replica(models: String, cache: String, compiler: Compiler) throws -> BinaryServer {
        try BinaryServer(environment: [
            "MODELS_DIR": models, "STATE_DIR": try Paths.temporaryFolder("replica-state"), "CACHE_DIR": cache, "SWIFTC": compiler.path,
            "CACHE_KEY": "the replicas' shared cache key",
            // The wrapper logs each compile beside itself, outside the build folder a confined compiler may write.
            "MODEL_SANDBOX": "off",
        ])
    }

    static func builds(_ client: HTTPClient) async throws -> Int {
        let metrics = try await client.get("/metrics").text
        return metrics.split(separator: "\n").filter { $0.hasPrefix("autoserve_model_builds_total{") && $0.contains(#"result="success""#) }
            .compactMap { Int($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    @Test func replicasStartedTogetherBuildEachVersionOnceAndADamagedEntryIsRebuilt() async throws {
        let echo = "\(Paths.fixtures)/models/Echo"
        let models = try Paths.modelsFolder(["First": echo, "Second": echo, "Third": echo])
        let cache = try Paths.temporaryFolder("shared-cache")
        let compiler = try Compiler()
        let replicas = try (0..<3).map { _ in try Self.replica(models: models, cache: cache, compiler: compiler) }
        defer { replicas.forEach { $0.stop() } }
        var clients: [HTTPClient] = []
        for replica in replicas {
            let client = HTTPClient(base: "http://127.0.0.1:\(try await replica.waitUntilListening())")
            try await client.waitForTheFirstSync()
            clients.append(client)
        }
        for (index, client) in clients.enumerated() {
            for model in ["First", "Second", "Third"] {
                let answer = try await client.post("/\(model)", #"{"variables": {"x": 1}}"#)
                #expect(answer.status == 200, "replica \(index), \(model): \(answer.text)")
            }
        }
        let compiles = compiler.compiles
        #expect(compiles.filter { $0 == "AutoServeModel" }.count == 1, "the SDK: \(compiles)")
        let plugins = compiles.filter { $0.hasPrefix("AS_") }
        #expect(plugins.count == 3 && Set(plugins).count == 3, "each model once: \(compiles)")
        var total = 0
        for client in clients { total += try await Self.builds(client) }
        #expect(total == 3, "autoserve_model_builds_total over the three replicas")
        for server in replicas { await server.stopped() }
        let waited = replicas.filter { $0.logs.contains("another process is building the same entry") }.count
        #expect(!replicas.contains { $0.logs.contains("cannot be locked") }, "flock works on a local file system")

        // Damage one entry (truncated, as a full disk leaves it) and another one's seal, and plant the third: a new
        // replica rebuilds all three, loads nothing broken or planted and serves all three.
        let pluginFolder = try #require(
            FileManager.default.enumerator(atPath: cache)?.compactMap { $0 as? String }.first { $0.hasSuffix("/plugins") }.map { "\(cache)/\($0)" })
        let entries = try FileManager.default.contentsOfDirectory(atPath: pluginFolder).filter { $0.hasSuffix(".so") && !$0.hasPrefix(".") }.sorted()
        #expect(entries.count == 3, "\(entries)")
        let truncated = try #require(FileHandle(forWritingAtPath: "\(pluginFolder)/\(entries[0])"))
        try truncated.truncate(atOffset: 4096)
        try truncated.close()
        try "size 1\nsha256 0\nidentity another-toolchain\n".write(toFile: "\(pluginFolder)/\(entries[1]).sum", atomically: true, encoding: .utf8)
        // And a planted plugin: another model's library copied over the third entry with its seal recomputed as
        // anyone can (size and plain SHA-256, the build identity kept); without CACHE_KEY's HMAC it is rebuilt.
        let planted = try Data(contentsOf: URL(fileURLWithPath: "\(pluginFolder)/\(entries[1])"))
        try planted.write(to: URL(fileURLWithPath: "\(pluginFolder)/\(entries[2])"))
        let identity =
            try String(contentsOfFile: "\(pluginFolder)/\(entries[2]).sum", encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("identity ") } ?? ""
        let digest = SHA256.hash(data: planted).map { String(format: "%02x", $0) }.joined()
        try "size \(planted.count)\nsha256 \(digest)\n\(identity)\n".write(toFile: "\(pluginFolder)/\(entries[2]).sum", atomically: true, encoding: .utf8)
        let fourth = try Self.replica(models: models, cache: cache, compiler: compiler)
        defer { fourth.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await fourth.waitUntilListening())")
        try await client.waitForTheFirstSync()
        for model in ["First", "Second", "Third"] {
            let answer = try await client.post("/\(model)", #"{"variables": {"x": 1}}"#)
            #expect(answer.status == 200, "after the damage, \(model): \(answer.text)")
        }
        #expect(try await Self.builds(client) == 3, "the two damaged entries and the planted one are rebuilt")
        await fourth.stopped()
        #expect(fourth.logs.components(separatedBy: "a cached plugin is damaged; rebuilding it").count == 4, "\(fourth.logs.suffix(3000))")
        #expect(fourth.logs.contains("another-toolchain"))
        #expect(fourth.logs.contains("no HMAC"), "the planted plugin is named as unsealed by this key")
        print("shared cache: 3 replicas started together compiled \(plugins.count) plugins for 3 models; \(waited) waited for another's build")
    }

    /// The replica that builds a version is killed (SIGKILL) while its compiler runs: the replica waiting for the
    /// same version takes the lock the kernel released, builds the version itself and serves it; nothing the killed
    /// one wrote is ever loaded, and a replica started afterwards loads the entry without compiling.
    @Test func aReplicaKilledMidBuildLeavesNothingBroken() async throws {
        let models = try Paths.modelsFolder(["Held": "\(Paths.fixtures)/models/Echo"])
        let cache = try Paths.temporaryFolder("shared-cache")
        let compiler = try Compiler(holdFirst: true)
        defer { try? Data().write(to: URL(fileURLWithPath: compiler.release)) }
        let builder = try Self.replica(models: models, cache: cache, compiler: compiler)
        defer { builder.stop() }
        _ = try await builder.waitUntilListening()
        // The model's compile comes after the model SDK's, in a cache of its own: on CI's loaded 2-core machine the SDK
        // (with the explanations' walks) once took the replica past 120 s.
        try await eventually("the first replica's compiler runs", timeout: .seconds(300)) {
            guard builder.process.isRunning else { throw TestFailure("the first replica exited: \(builder.logs.suffix(1500))") }
            return FileManager.default.fileExists(atPath: compiler.started)
        }

        let waiting = try Self.replica(models: models, cache: cache, compiler: compiler)
        defer { waiting.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await waiting.waitUntilListening())")
        try await waiting.waitForLog("another process is building the same entry")
        #expect(compiler.compiles.filter { $0.hasPrefix("AS_") }.count == 1, "the second replica compiled while the first held the lock")

        kill(builder.process.processIdentifier, SIGKILL)
        try await eventually("the second replica serves the model it built itself", timeout: .seconds(180)) {
            try await client.post("/Held", #"{"variables": {"x": 1}}"#).status == 200
        }
        #expect(compiler.compiles.filter { $0.hasPrefix("AS_") }.count == 2, "\(compiler.compiles)")
        #expect(try await Self.builds(client) == 1)
        try await waiting.waitForLog("the other build ended")
        #expect(!waiting.logs.contains("longer than the lock timeout"), "the lock of the killed replica was released with it")
        // The killed replica's compiler is still held: it never published anything.
        try Data().write(to: URL(fileURLWithPath: compiler.release))

        let late = try Self.replica(models: models, cache: cache, compiler: compiler)
        defer { late.stop() }
        let lateClient = HTTPClient(base: "http://127.0.0.1:\(try await late.waitUntilListening())")
        try await lateClient.waitForTheFirstSync()
        #expect(try await lateClient.post("/Held", #"{"variables": {"x": 2}}"#).status == 200)
        #expect(try await Self.builds(lateClient) == 0, "a replica started later loads the entry")
    }
}
