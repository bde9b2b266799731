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
