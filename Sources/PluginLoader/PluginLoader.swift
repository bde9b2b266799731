public import PluginBuilder
public import PluginRuntime
public import ServingCore

/// Turns a built plugin into a running model: loads it, runs `init(path:)`, then the manifest's examples.
///
/// A version that fails any step is never served; the caller keeps the previous version.
public protocol PluginLoading: Sendable {
    func load(_ plugin: BuiltPlugin) async throws(PluginLoadError) -> any ModelRunner
}

/// Loads plugins into the server's own process.
public struct InProcessLoader: PluginLoading {
    public init() {}

    public func load(_ plugin: BuiltPlugin) async throws(PluginLoadError) -> any ModelRunner {
        let library = try PluginLibrary.open(path: plugin.libraryPath, entrySymbol: plugin.definition.entrySymbol)
        let model = InProcessModel(try library.instantiate(folder: plugin.definition.folder))
        try await ExampleRunner.check(model, examples: plugin.definition.manifest.examples, name: plugin.definition.name)
        return model
    }
}

/// Runs a manifest's examples against a freshly loaded version.
public enum ExampleRunner {
    public static func check(_ model: any ModelRunner, examples: [ModelExample], name: ModelName) async throws(PluginLoadError) {
        for (position, example) in examples.enumerated() {
            let label = "example \(position + 1) of \(name)/model.yaml (line \(example.line))"
            switch await model.predict(variables: example.variables.jsonBytes) {
            case .failure(let failure):
                throw PluginLoadError("\(label) failed with \(failure.status): \(failure.message)")
            case .output(let bytes):
                guard let expect = example.expect else { continue }
                let output: JSONValue
                do {
                    output = try JSONParser.parse(bytes)
                } catch {
                    throw PluginLoadError("\(label): the output is not valid JSON: \(error)")
                }
                if let mismatch = output.mismatch(against: expect) {
                    throw PluginLoadError("\(label) does not match: \(mismatch)")
                }
            }
        }
    }
}
