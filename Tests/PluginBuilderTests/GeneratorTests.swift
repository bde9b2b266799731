import Foundation
import ModelSource
import ServingCore
import Testing

@testable import PluginBuilder

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
}
