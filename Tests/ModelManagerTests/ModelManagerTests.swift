import Foundation
import Logging
import ModelSource
import PluginLoader
import ServingCore
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
        let first = manager.snapshot()
        #expect(first.isReady)
        #expect(first.models["Versioned"]?.state == .ready)
        let v1 = try #require(first.serving("Versioned"))
        #expect(await Self.label(v1) == .string("v1"))

        try Self.versioned("v2").write(toFile: "\(models)/Versioned/etls.swift", atomically: true, encoding: .utf8)
        await manager.sync(id: 2)
        let v2 = try #require(manager.snapshot().serving("Versioned"))
        #expect(v2.version != v1.version)
        #expect(await Self.label(v2) == .string("v2"))
        #expect(await Self.label(v1) == .string("v1"), "a request holding the old version finishes on it")

        try Self.versioned("v3", compiles: false).write(toFile: "\(models)/Versioned/etls.swift", atomically: true, encoding: .utf8)
        await manager.sync(id: 3)
        let afterBrokenPush = try #require(manager.snapshot().models["Versioned"])
        #expect(afterBrokenPush.state == .ready)
        #expect(afterBrokenPush.serving?.version == v2.version)
        #expect(afterBrokenPush.lastError?.diagnostic.message.contains("cannot convert value of type 'String'") == true)
        #expect(afterBrokenPush.lastError?.version != v2.version)

        try FileManager.default.removeItem(atPath: "\(models)/Versioned")
        await manager.sync(id: 4)
        #expect(manager.snapshot().models["Versioned"] == nil)
        #expect(await Self.label(v2) == .string("v2"))

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
}
