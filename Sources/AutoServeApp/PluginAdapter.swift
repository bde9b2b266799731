import DriftReport
import Foundation
public import Logging
public import ModelManager
public import ModelSource
public import PluginBuilder
public import PluginLoader
import PluginRuntime
public import ServingCore

extension PluginAdapter {
    /// The live drift monitor of a version whose `model.yaml` names a reference sample; a sample that cannot be
    /// read fails the version with the file, the line and the reason.
    static func driftMonitor(_ definition: ModelDefinition, folder: String) throws(ModelBuildError) -> DriftMonitor? {
        guard let settings = definition.manifest.drift else { return nil }
        let path = (folder as NSString).appendingPathComponent(settings.reference)
        let file = "\(definition.name)/\(settings.reference)"
        // The sample is read in the server (the drift monitor keeps its bins): its size is checked before it is read.
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard size <= DriftSettings.maximumReferenceBytes else {
            throw ModelBuildError(
                Diagnostic(
                    file: "\(definition.name)/model.yaml",
                    message: "drift.reference: \(file) is \(size) bytes, more than the \(DriftSettings.maximumReferenceBytes >> 20) MiB a reference sample "
                        + "may take; a sample of some thousands of rows is enough"))
        }
        do throws(DriftInputError) {
            let rows = try RowFile.read(path, model: definition.name.rawValue).rows
            guard !rows.isEmpty else { throw DriftInputError("\(path): no rows") }
            return DriftMonitor(reference: rows, window: settings.window)
        } catch {
            let reason = error.description.replacingOccurrences(of: path, with: file)
            throw ModelBuildError(Diagnostic(file: "\(definition.name)/model.yaml", message: "drift.reference: \(reason)"))
        }
    }
}

/// Exports a version from its source, reads its definition, generates its code and compiles its plugin; the
/// loadable loads it with the configured loader (in-process or worker processes).
public struct PluginAdapter: SourceAdapter {
    let source: any ModelSourceProvider
    /// Reads a version's files into its definition, in a helper process in the server.
    let reader: any DefinitionReading
    let compiler: Result<PluginCompiler, ToolchainError>
    let loader: any PluginLoading
    let metrics: Metrics
    let logger: Logger

    public init(
        source: any ModelSourceProvider, reader: any DefinitionReading, compiler: Result<PluginCompiler, ToolchainError>, loader: any PluginLoading,
        metrics: Metrics, logger: Logger
    ) {
        self.source = source
        self.reader = reader
        self.compiler = compiler
        self.loader = loader
        self.metrics = metrics
        self.logger = logger
    }

    public func adapt(_ folder: ModelFolder) async throws(ModelBuildError) -> Loadable {
        let compiler = try self.compiler.mapError { ModelBuildError(Diagnostic(message: $0.message)) }.get()
        let exported: String
        do {
            exported = try await source.export(folder)
        } catch {
            // A failed export may be the disk's; a refused tree is the same tree on the next sync and fails again.
            throw ModelBuildError(Diagnostic(file: folder.name.rawValue, message: "cannot export the version: \(error)"), retryable: true)
        }
        let name = folder.name.rawValue
        let definition: ModelDefinition
        let built: BuiltPlugin
        do {
            definition = try await reader.read(name: folder.name, version: folder.version, folder: exported, buildIdentity: compiler.buildIdentity)
            let sdk = try await compiler.prepareSDK()
            built = try await compiler.build(definition, sdk: sdk).get()
        } catch {
            metrics.increment("autoserve_model_builds_total", labels: [name, "failure"])
            throw error
        }
        if !built.fromCache {
            metrics.increment("autoserve_model_builds_total", labels: [name, "success"])
            metrics.observe("autoserve_build_duration_seconds", labels: [name], value: built.duration.seconds)
            logger.with(model: folder.name, version: folder.shortVersion).info(
                "plugin built", metadata: ["seconds": "\(String(format: "%.2f", built.duration.seconds))"]
            )
        }
        let drift = try Self.driftMonitor(definition, folder: exported)
        let (loader, metrics) = (loader, metrics)
        return Loadable(
            typeName: definition.displayType, summary: definition.manifest.description, drift: drift, schemas: definition.entryPoint.schemas,
            example: definition.manifest.examples.first?.variables, explainRefusal: definition.explainRefusal
        ) { () throws(ModelBuildError) in
            do throws(PluginLoadError) {
                let runner = try await loader.load(built)
                metrics.increment("autoserve_plugin_loads_total", labels: [name, "success"])
                return runner
            } catch {
                metrics.increment("autoserve_plugin_loads_total", labels: [name, "failure"])
                throw ModelBuildError(Diagnostic(file: name, message: error.message))
            }
        }
    }
}

extension ModelManager {
    /// The pipeline of plugins read by `reader`, built with `compiler` and loaded with `loader`.
    public convenience init(
        source: any ModelSourceProvider,
        reader: any DefinitionReading,
        compiler: Result<PluginCompiler, ToolchainError>,
        loader: any PluginLoading,
        configuration: ModelManagerConfiguration,
        metrics: Metrics,
        logger: Logger
    ) {
        let adapter = PluginAdapter(source: source, reader: reader, compiler: compiler, loader: loader, metrics: metrics, logger: logger)
        self.init(source: source, adapter: adapter, configuration: configuration, metrics: metrics, logger: logger)
    }
}
