import Foundation
import Logging
import ModelSource
import ServingCore
import Synchronization
import Testing

@testable import PluginBuilder

#if canImport(Glibc)
    import Glibc
#endif

struct GeneratorTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static let sdkSources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/AutoServeModel").path

    /// The generated file for a fixture folder is byte-for-byte the reviewed golden file.
    @Test func serveModelsMatchesTheGoldenFile() throws {
        var definitions: [ModelDefinition] = []
        for (name, path) in [("Scorer", "\(Self.fixtures)/golden/models/Scorer"), ("Echo", "\(Self.fixtures)/models/Echo")] {
            let version = try FolderDigest.version(ofFolder: path)
            definitions.append(try ModelDefinitionReader(buildIdentity: "golden").definition(name: ModelName(validating: name), version: version, folder: path))
        }
        let generated = ServeModelsGenerator.document(for: definitions)
        let goldenPath = "\(Self.fixtures)/golden/ServeModels.swift"
        let golden = try String(contentsOfFile: goldenPath, encoding: .utf8)
        if generated != golden { try generated.write(toFile: goldenPath + ".actual", atomically: true, encoding: .utf8) }
        #expect(generated == golden, "differs from the golden file; see \(goldenPath).actual")
        #expect(ServeModelsGenerator.document(for: definitions.reversed()) == generated)
    }

    @Test func moduleNamesAreUniquePerVersionAndBuildIdentity() throws {
        let name = try ModelName(validating: "my-model")
        let first = ModelDefinitionReader.moduleName(name: name, version: "a", buildIdentity: "x")
        #expect(first.hasPrefix("AS_my_model_"))
        #expect(first == ModelDefinitionReader.moduleName(name: name, version: "a", buildIdentity: "x"))
        #expect(first != ModelDefinitionReader.moduleName(name: name, version: "b", buildIdentity: "x"))
        #expect(first != ModelDefinitionReader.moduleName(name: name, version: "a", buildIdentity: "y"))
    }

    /// The SDK compiled into plugins is exactly the `AutoServeModel` library's sources.
    @Test func theEmbeddedSDKIsTheLibrarySources() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.sdkSources).filter { $0.hasSuffix(".swift") }
        #expect(Set(files) == Set(EmbeddedSDK.files.keys))
        for file in files {
            #expect(try String(contentsOfFile: "\(Self.sdkSources)/\(file)", encoding: .utf8) == EmbeddedSDK.files[file], "\(file)")
        }
    }
}

/// Builds run under `nice`, so that a compile during a sync never takes the cores from the requests.
struct ProcessRunnerTests {
    @Test func backgroundCommandsRunAtALowerPriority() async throws {
        let normal = try await ProcessRunner.run("/bin/sh", ["-c", "nice"])
        let background = try await ProcessRunner.run("/bin/sh", ["-c", "nice"], background: true)
        let base = try #require(Int(normal.output.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(Int(background.output.trimmingCharacters(in: .whitespacesAndNewlines)) == min(base + 10, 19))
        #expect(background.succeeded)
    }

    /// NIO opens its sockets without close-on-exec; a command must still start without them, or a compiler that
    /// outlives a killed server holds its port and the restarted server cannot listen.
    @Test func commandsInheritNoDescriptorBeyondTheStandardOnes() async throws {
        let listening = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listening > 2)
        defer { close(listening) }
        #expect(fcntl(listening, F_GETFD) & FD_CLOEXEC == 0)
        let probe = "[ -e /proc/$$/fd/\(listening) ] && echo held || echo closed; [ -e /proc/$$/fd/1 ] && echo stdout"
        let outcome = try await ProcessRunner.run("/bin/sh", ["-c", probe])
        #expect(outcome.output == "closed\nstdout\n")
    }

    /// A cancelled caller (the server stopping during a build) kills the command and its group rather than waiting.
    /// The command would wait 600 s; the bound leaves room for a task that waits minutes for a thread of Swift's pool
    /// on a busy machine (82 s once in CI).
    @Test func cancellingTheCallerKillsTheCommand() async throws {
        let started = ContinuousClock.now
        let running = Task { try await ProcessRunner.run("/bin/sh", ["-c", "sleep 600 & wait"]) }
        running.cancel()
        let outcome = try await running.value
        #expect(outcome.signalled && outcome.exitCode == SIGKILL && !outcome.timedOut)
        #expect(ContinuousClock.now - started < .seconds(300))
    }
}

/// A build that waits for a lock its own process holds (two models' builds both need the model SDK) says so, rather
/// than blaming another process.
struct BuildLockTests {
    final class Lines: Sendable {
        let value = Mutex<[String]>([])
        var all: [String] { value.withLock { $0 } }
    }

    struct Capture: LogHandler {
        let lines: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { lines.value.withLock { $0.append(event.message.description) } }
    }

    @Test func waitingForThisProcesssOwnBuildSaysSo() async throws {
        let lines = Lines()
        let folder = NSTemporaryDirectory() + "autoserve-lock-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let compiler = PluginCompiler(
            toolchain: try await Toolchain.locate(configured: nil), stateDirectory: folder, logger: Logger(label: "test") { _ in Capture(lines: lines) })
        let path = "\(folder)/entry.lock"
        let first = await compiler.takeLock(path, for: "the model SDK")
        let second = Task { await compiler.takeLock(path, for: "the model SDK") }
        let deadline = ContinuousClock.now + .seconds(30)
        while !lines.all.contains(where: { $0.hasPrefix("this process is already building the same entry") }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(lines.all.contains { $0.hasPrefix("this process is already building the same entry") }, "\(lines.all)")
        compiler.releaseLock(first, path)
        let lock = await second.value
        #expect(lock != nil)
        compiler.releaseLock(lock, path)
        #expect(lines.all.contains("the other build ended"))
        #expect(!lines.all.contains { $0.hasPrefix("another process") })
    }
}
