import Foundation
public import Logging
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
    /// The per-call limit of models whose manifest sets none (`MODEL_TIMEOUT_MS`).
    let timeout: Duration
    let logger: Logger?
    let metrics: Metrics?

    public init(timeout: Duration = .seconds(10), logger: Logger? = nil, metrics: Metrics? = nil) {
        self.timeout = timeout
        self.logger = logger
        self.metrics = metrics
    }

    public func load(_ plugin: BuiltPlugin) async throws(PluginLoadError) -> any ModelRunner {
        let definition = plugin.definition
        // dlopen and init(path:) on the pool for blocking calls: a slow init must hold neither an event loop nor a
        // thread of the concurrency pool, where the HTTP responder (health checks included) runs.
        let instance = try await BlockingCalls.run { () throws(PluginLoadError) -> PluginInstance in
            try PluginLibrary.open(path: plugin.libraryPath, entrySymbol: definition.entrySymbol).instantiate(folder: definition.folder)
        }
        let timeout = definition.manifest.timeoutMilliseconds.map { Duration.milliseconds($0) } ?? self.timeout
        let model = InProcessModel(instance, name: definition.name.rawValue, timeout: timeout, logger: logger, metrics: metrics)
        try await ExampleRunner.check(model, examples: definition.manifest.examples, name: definition.name)
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
