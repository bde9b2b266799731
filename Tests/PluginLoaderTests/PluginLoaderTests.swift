import Foundation
import PluginBuilder
import ServingCore
import Testing

@testable import PluginLoader

/// Builds real plugins with swiftc from `models_serve/` and loads them into this process.
@Suite(.serialized)
struct PluginLoaderTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static func build(_ folderName: String) async throws -> BuiltPlugin {
        let state = NSTemporaryDirectory() + "autoserve-loader-tests"
        let toolchain = try await Toolchain.locate(configured: nil)
        let compiler = PluginCompiler(toolchain: toolchain, stateDirectory: state)
        let sdk = try await compiler.prepareSDK()
        let name = try ModelName(validating: folderName)
        let folder = "\(repository)/models_serve/\(folderName)"
        let definition = try ModelGenerator(buildIdentity: compiler.buildIdentity).definition(name: name, version: "test-\(folderName)", folder: folder)
        return try await compiler.build(definition, sdk: sdk).get()
    }

    @Test func irisBuildsLoadsAndPredicts() async throws {
        let plugin = try await Self.build("Iris")
        let model = try await InProcessLoader().load(plugin)
        let answer = await model.predict(variables: Array(#"{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}"#.utf8))
        guard case .output(let bytes) = answer else { Issue.record("expected an output, got \(answer)"); return }
        let output = try JSONParser.parse(bytes)
        #expect(output["iris_class"] == .string("setosa"))
    }
}

extension PluginLoaderTests {
    static func buildFixture(_ path: String, name: String) async throws -> Result<BuiltPlugin, ModelBuildError> {
        let state = NSTemporaryDirectory() + "autoserve-loader-tests"
        let compiler = PluginCompiler(toolchain: try await Toolchain.locate(configured: nil), stateDirectory: state)
        let sdk = try await compiler.prepareSDK()
        let definition = try ModelGenerator(buildIdentity: compiler.buildIdentity).definition(
            name: ModelName(validating: name), version: "test-\(name)", folder: "\(repository)/Tests/Fixtures/\(path)"
        )
        return await compiler.build(definition, sdk: sdk)
    }

    /// The glue of a nested type with a labelled, non-throwing function in an extension compiles and runs.
    @Test func goldenScorerBuildsAndPredicts() async throws {
        let model = try await InProcessLoader().load(try await Self.buildFixture("golden/models/Scorer", name: "Scorer").get())
        guard case .output(let bytes) = await model.predict(variables: Array(#"{"x": 4}"#.utf8)) else { Issue.record("no output"); return }
        #expect(try JSONParser.parse(bytes) == .object(["y": .number(8)]))
    }

    @Test func aCompileErrorCarriesSwiftcsDiagnostics() async throws {
        let result = try await Self.buildFixture("broken/CompileError", name: "CompileError")
        guard case .failure(let error) = result else { Issue.record("it compiled"); return }
        #expect(error.diagnostic.file == "CompileError/etls.swift")
        #expect(error.diagnostic.line == 7)
        #expect(error.log?.contains("etls.swift:7:") == true)
    }

    @Test func failingExamplesAndThrowingInitializersAreLoadErrors() async throws {
        let example = try await Self.buildFixture("broken/FailingExample", name: "FailingExample").get()
        await #expect { try await InProcessLoader().load(example) } throws: { error in
            (error as? PluginLoadError)?.message.contains("answer: expected 42, got 41") == true
        }
        let throwing = try await Self.buildFixture("broken/ThrowingInit", name: "ThrowingInit").get()
        await #expect { try await InProcessLoader().load(throwing) } throws: { error in
            (error as? PluginLoadError)?.message.contains("init(path:) threw") == true
        }
    }
}
