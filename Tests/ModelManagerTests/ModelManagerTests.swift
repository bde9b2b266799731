import AutoServeApp
import Foundation
import Logging
import ModelSource
import PluginLoader
import ServingCore
import Synchronization
import Testing

@testable import ModelManager
@testable import PluginBuilder

/// Versions come and go under a real manager with real swiftc builds; serving never breaks.
@Suite(.serialized)
struct ModelManagerTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static func versioned(_ label: String, compiles: Bool = true) -> String {
        """
        import AutoServeModel

        struct Versioned {
            init(path: String) {}

            func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
                \(compiles ? "" : "let broken: Int = \"x\"")
                return ["label": "\(label)"]
            }
        }
        """
    }

    static func label(_ version: ServingVersion?) async -> JSONValue? {
        guard let version, case .output(let bytes) = await version.runner.predict(variables: Array("{}".utf8)) else { return nil }
        return try? JSONParser.parse(bytes)["label"]
    }

    @Test func versionsSwapOnlyWhenTheyWorkAndInFlightHoldersKeepTheirs() async throws {
        let root = NSTemporaryDirectory() + "autoserve-manager-\(UUID().uuidString)"
        let models = "\(root)/models"
        try FileManager.default.createDirectory(atPath: "\(models)/Versioned", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(Self.repository)/Tests/Fixtures/models/Echo", toPath: "\(models)/Echo")
        try Self.versioned("v1").write(toFile: "\(models)/Versioned/etls.swift", atomically: true, encoding: .utf8)
        let metrics = Metrics()
        let toolchain = try await Toolchain.locate(configured: nil)
        let manager = ModelManager(
            source: LocalModelSource(directory: models, stateDirectory: "\(root)/state"),
            reader: .inProcess,
            compiler: .success(PluginCompiler(toolchain: toolchain, stateDirectory: "\(root)/state")),
            loader: InProcessLoader(),
            configuration: ModelManagerConfiguration(),
            metrics: metrics,
            logger: Logger(label: "test")
        )
        #expect(!manager.snapshot().isReady)
        await manager.sync(id: 1)
        await manager.settled()
        let first = manager.snapshot()
        #expect(first.isReady)
        #expect(first.models["Versioned"]?.state == .ready)
        let v1 = try #require(first.serving("Versioned"))
        #expect(await Self.label(v1) == .string("v1"))

        // A request in flight holds v1 across the swap.
        #expect(v1.hold())
        try Self.versioned("v2").write(toFile: "\(models)/Versioned/etls.swift", atomically: true, encoding: .utf8)
        await manager.sync(id: 2)
        await manager.settled()
        let v2 = try #require(manager.snapshot().serving("Versioned"))
        #expect(v2.version != v1.version)
        #expect(await Self.label(v2) == .string("v2"))
        #expect(await Self.label(v1) == .string("v1"), "a request holding the old version finishes on it")
        #expect(v1.phase == .releasing)
        v1.letGo()
        #expect(v1.phase == .released, "released when its last request is done")
        #expect(v2.hold())

        try Self.versioned("v3", compiles: false).write(toFile: "\(models)/Versioned/etls.swift", atomically: true, encoding: .utf8)
        await manager.sync(id: 3)
        await manager.settled()
        let afterBrokenPush = try #require(manager.snapshot().models["Versioned"])
        #expect(afterBrokenPush.state == .ready)
        #expect(afterBrokenPush.serving?.version == v2.version)
        #expect(afterBrokenPush.lastError?.diagnostic.message.contains("cannot convert value of type 'String'") == true)
        #expect(afterBrokenPush.lastError?.version != v2.version)

        try FileManager.default.removeItem(atPath: "\(models)/Versioned")
        await manager.sync(id: 4)
        await manager.settled()
        #expect(manager.snapshot().models["Versioned"] == nil)
        #expect(await Self.label(v2) == .string("v2"))
        v2.letGo()
        #expect(v2.phase == .released)

        #expect(metrics.render().contains(#"autoserve_model_builds_total{model="Echo",result="success"} 1"# + "\n"), "an unchanged model is built once")
        #expect(manager.snapshot().serving("Echo")?.version == first.serving("Echo")?.version)
        #expect(manager.snapshot().lastSync?.id == 4)
    }

    @Test func withoutACompilerEveryModelFailsWithTheReason() async throws {
        let root = NSTemporaryDirectory() + "autoserve-manager-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: "\(root)/models", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(Self.repository)/Tests/Fixtures/models/Echo", toPath: "\(root)/models/Echo")
        let failure: Result<PluginCompiler, ToolchainError>
        do throws(ToolchainError) {
            failure = .success(PluginCompiler(toolchain: try await Toolchain.locate(configured: "/nonexistent/swiftc"), stateDirectory: root))
        } catch {
            failure = .failure(error)
        }
        guard case .failure = failure else {
            Issue.record("a compiler was found at /nonexistent/swiftc")
            return
        }
        let manager = ModelManager(
            source: LocalModelSource(directory: "\(root)/models", stateDirectory: "\(root)/state"), reader: .inProcess,
            compiler: failure, loader: InProcessLoader(), configuration: ModelManagerConfiguration(), metrics: Metrics(), logger: Logger(label: "test")
        )
        await manager.sync(id: 1)
        await manager.settled()
        let echo = try #require(manager.snapshot().models["Echo"])
        #expect(echo.state == .failed)
        #expect(echo.lastError?.diagnostic.message.contains("SWIFTC=/nonexistent/swiftc") == true)
    }
}

extension ModelManagerTests {
    /// A burst of sync requests before the queued one starts costs one sync: every request gets its id.
    @Test func aQueuedSyncAbsorbsTheRequestsThatFollowIt() async throws {
        let manager = ModelManager(
            source: LocalModelSource(directory: NSTemporaryDirectory() + "autoserve-no-models", stateDirectory: NSTemporaryDirectory()),
            reader: .inProcess, compiler: .failure(ToolchainError("not needed")), loader: InProcessLoader(), configuration: ModelManagerConfiguration(),
            metrics: Metrics(), logger: Logger(label: "test")
        )
        let ids = (0..<5).map { _ in manager.requestSync(reason: "burst") }
        #expect(Set(ids).count == 1, "\(ids)")
    }

    /// A source whose reads wait until the test lets each one go, and which counts them.
    final class GatedSource: ModelSourceProvider {
        let reads = AsyncStream<Int>.makeStream()
        let gates = Mutex<[CheckedContinuation<Void, Never>]>([])
        let count = Mutex(0)

        func sync() async throws(SourceError) -> SourceSnapshot {
            let number = count.withLock {
                $0 += 1
                return $0
            }
            await withCheckedContinuation { continuation in
                gates.withLock { $0.append(continuation) }
                reads.continuation.yield(number)
            }
            return SourceSnapshot(models: [], rejected: [])
        }

        func open() { gates.withLock { $0.isEmpty ? nil : $0.removeFirst() }?.resume() }
        func export(_ folder: ModelFolder) async throws -> String { "/nowhere" }
        var displayName: String { "gated" }
    }

    /// Syncs never overlap: requests made while one runs become exactly one more, which all of them are told.
    @Test func requestsDuringARunningSyncBecomeOneMore() async throws {
        let source = GatedSource()
        let manager = ModelManager(
            source: source, adapter: NoAdapter(), configuration: ModelManagerConfiguration(), metrics: Metrics(), logger: Logger(label: "test"))
        let running = Task { try await manager.run() }
        var reads = source.reads.stream.makeAsyncIterator()
        #expect(await reads.next() == 1, "the first sync reads the source")
        let ids = (0..<5).map { _ in manager.requestSync(reason: "during the first") }
        #expect(Set(ids) == [2], "\(ids)")
        source.open()
        #expect(await reads.next() == 2, "one more sync, after the first")
        #expect(source.count.withLock { $0 } == 2, "never two at once")
        source.open()
        try await Self.waitFor { manager.snapshot().lastSync?.id == 2 }
        #expect(source.count.withLock { $0 } == 2)
        running.cancel()
    }

    struct NoAdapter: SourceAdapter {
        func adapt(_ folder: ModelFolder) async throws(ModelBuildError) -> Loadable {
            throw ModelBuildError(Diagnostic(message: "no adapter"))
        }
    }

    static func waitFor(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}
