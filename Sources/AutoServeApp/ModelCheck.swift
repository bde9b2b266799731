import Foundation
import HTTPFrontend
public import Logging
import ModelManager
public import ModelSource
public import PluginBuilder
import PluginLoader
public import ServingCore

/// `autoserve check DIR`: builds every folder of a models checkout and runs its examples, as the server
/// would, so a models repository's CI catches a bad push before the server sees it.
public enum ModelCheck {
    public struct Report: Sendable {
        public var text: String
        public var passed: Bool
    }

    /// `progress`: say on standard error what is built while it is (the command's; tests pass none).
    public static func run(directory givenDirectory: String, configuration given: ServerConfiguration, logger: Logger, progress: Bool = false) async
        -> Report
    {
        let here = FileManager.default.currentDirectoryPath
        let configuration = given.resolvingPaths(against: here)
        let directory = ServerConfiguration.absolute(givenDirectory, against: here)
        let source = LocalModelSource(directory: directory, stateDirectory: configuration.stateDir, maxModelBytes: configuration.maxModelBytes)
        let manager = await builtOnce(source, configuration: configuration, logger: logger, progress: progress ? BuildProgress(command: "check") : nil)
        let snapshot = manager.snapshot()
        var text = ""
        var passed = true
        if let sync = snapshot.lastSync, !sync.succeeded {
            return Report(text: "FAIL \(directory): \(sync.message)\n", passed: false)
        }
        for name in snapshot.models.keys.sorted() {
            let status = snapshot.models[name]!
            if let serving = status.serving, status.lastError == nil {
                text += "ok   \(name) (\(serving.typeName), version \(serving.version.prefix(12)))\n"
            } else {
                passed = false
                text += "FAIL \(name): \(status.lastError.map { "\($0.diagnostic)" } ?? "not loaded")\n"
                if let log = status.lastError?.log, !log.isEmpty {
                    text += log.split(separator: "\n", omittingEmptySubsequences: false).map { "     \($0)" }.joined(separator: "\n") + "\n"
                }
            }
        }
        if snapshot.models.isEmpty {
            passed = false
            text += "FAIL \(directory): no model folders found\n"
        }
        // With MODELS_REPO_ALLOWED_SIGNERS, the commit checked out must be one the server would serve (docs/git-sync.md,
        // "Signed commits").
        if let signers = configuration.modelsRepoAllowedSigners {
            switch CommitSignature.verifyHead(of: directory, signers: signers) {
            case (let commit?, .verified(let principals, let fingerprint)):
                text += "ok   commit \(commit.prefix(12)) signed by \(principals) (\(fingerprint))\n"
            case (let commit, .refused(let reason, _)):
                passed = false
                text += "FAIL commit \(commit.map { String($0.prefix(12)) } ?? "HEAD") would not be served: \(reason)\n"
            case (nil, .verified):
                passed = false
            }
        }
        text += passed ? "\(snapshot.models.count) model(s) passed\n" : "some models failed\n"
        return Report(text: text, passed: passed)
    }

    /// A manager of `source` that has built and loaded every folder once, as the server would (its compiler, its
    /// isolation), for the commands that need models without serving them (`check`, `score --models-dir`).
    /// `progress` names the command that reports what it builds while it builds (`BuildProgress`).
    static func builtOnce(_ source: any ModelSourceProvider, configuration: ServerConfiguration, logger: Logger, progress: BuildProgress? = nil) async
        -> ModelManager
    {
        let compiler = await AutoServeServer.compiler(configuration, logger: logger)
        let manager = ModelManager(
            source: source,
            reader: AutoServeServer.reader(configuration),
            compiler: compiler,
            loader: AutoServeServer.loader(configuration, metrics: Metrics(), logger: logger),
            configuration: AutoServeServer.managerConfiguration(configuration),
            metrics: Metrics(),
            logger: logger
        )
        let sdkCached = (try? compiler.get().sdkIsCached) ?? true
        let watching = progress?.watch(manager, sdkCached: sdkCached)
        await manager.sync(id: 1)
        await manager.settled()
        watching?.cancel()
        await watching?.value
        return manager
    }
}

/// `autoserve generate DIR`: the `ServeModels.swift` the server would compile for a models checkout.
public enum ServeModelsGeneration {
    public struct Output: Sendable {
        public var document: String
        public var diagnostics: [Diagnostic]
        /// The models that generated.
        public var definitions: [ModelDefinition] = []

        /// The OpenAPI document a server would serve for these models, all of them ready (docs/http-api.md, "OpenAPI").
        public func openAPI(_ configuration: ServerConfiguration) -> String {
            let models = definitions.map { definition in
                OpenAPIDocument.Model(
                    name: definition.name.rawValue, description: definition.manifest.description, version: definition.version,
                    typeName: definition.displayType, schemas: definition.entryPoint.schemas, example: definition.manifest.examples.first?.variables,
                    explains: definition.explainRefusal == nil)
            }
            return OpenAPIDocument.document(
                models: models, prefix: configuration.baseUrl.isEmpty ? "" : "/\(configuration.baseUrl)", maxBatchRows: configuration.maxBatchRows,
                adminSync: configuration.adminToken != nil, webhook: configuration.webhookSecret != nil
            ).jsonText + "\n"
        }
    }

    public static func run(directory: String, configuration: ServerConfiguration) async throws(ConfigurationError) -> Output {
        let snapshot: SourceSnapshot
        do {
            snapshot = try LocalModelSource(directory: directory, stateDirectory: configuration.stateDir).scan()
        } catch {
            throw ConfigurationError(error.message)
        }
        let identity: String
        do {
            let toolchain = try await Toolchain.locate(configured: configuration.swiftc)
            identity = "\(toolchain.identity)-\(PluginCompiler.sdkHash)"
        } catch {
            throw ConfigurationError(error.message)
        }
        return await generate(snapshot, buildIdentity: identity, reader: AutoServeServer.reader(configuration))
    }

    /// Generates from a scanned checkout, reading each folder where it is.
    public static func generate(_ snapshot: SourceSnapshot, buildIdentity: String, reader: any DefinitionReading) async -> Output {
        var definitions: [ModelDefinition] = []
        var diagnostics = snapshot.rejected.map(\.diagnostic)
        for folder in snapshot.models {
            do {
                definitions.append(try await reader.read(name: folder.name, version: folder.version, folder: folder.sourcePath, buildIdentity: buildIdentity))
            } catch {
                diagnostics.append(error.diagnostic)
            }
        }
        return Output(document: ServeModelsGenerator.document(for: definitions), diagnostics: diagnostics, definitions: definitions)
    }
}
