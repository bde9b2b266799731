import AutoServeModel
import Crypto
import Foundation
import PluginRuntime
public import ServingCore

/// Everything generated for one model version: the input of a plugin build and an entry of the registry.
public struct ModelDefinition: Sendable, Hashable, Codable {
    public var name: ModelName
    public var version: String
    /// The exported, read-only folder of this version.
    public var folder: String
    public var sources: [String]
    public var manifest: ModelManifest
    public var entryPoint: ModelEntryPoint
    /// The Swift module name of the plugin, unique per (version, toolchain, ABI, SDK).
    public var moduleName: String
    /// The prefix of the plugin's C symbols: `<entrySymbol>_abi`, `_create`, `_predict`, `_destroy`.
    public var entrySymbol: String { "autoserve_v\(PluginABI.version)_\(moduleName)" }

    public var route: String { "/\(name)" }

    /// Why `{"explain": true}` is refused for this model (docs/explanations.md), or `nil` when the plugin has an explain
    /// entry point (a tree model's file may still lack the counts: its plugin says so).
    public var explainRefusal: String? {
        if !manifest.explain.enabled { return "\(name) has explain: false in its model.yaml" }
        if manifest.kind == .swift, entryPoint.explain == nil {
            return "\(name) does not explain its scores; declare func explain(_ variables: Variables) -> Explanation in \(entryPoint.typeName) "
                + "(docs/explanations.md)"
        }
        return nil
    }

    /// What the index and `autoserve check` show as the model's type: the Swift type, or the model file and its
    /// library (`LightGBM model.txt`).
    public var displayType: String {
        switch manifest.kind {
        case .swift: entryPoint.typeName
        case .lightgbm: "LightGBM \(manifest.treeModel?.file ?? TreeModelSettings.defaultFile(for: .lightgbm))"
        case .xgboost: "XGBoost \(manifest.treeModel?.file ?? TreeModelSettings.defaultFile(for: .xgboost))"
        }
    }
}

/// Reads a version's folder and produces its `ModelDefinition`: manifest, entry point, module name.
public struct ModelDefinitionReader: Sendable {
    /// Identifies the compiler and SDK the plugin is built with; part of every module name.
    public let buildIdentity: String

    public init(buildIdentity: String) {
        self.buildIdentity = buildIdentity
    }

    public func definition(name: ModelName, version: String, folder: String) throws(ModelBuildError) -> ModelDefinition {
        let manager = FileManager.default
        let sourceNames: [String]
        do {
            sourceNames = try manager.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".swift") && !$0.hasPrefix(".") }.sorted()
        } catch {
            throw ModelBuildError(Diagnostic(file: name.rawValue, message: "cannot read the model folder: \(error.localizedDescription)"))
        }
        var manifest = ModelManifest()
        let manifestPath = (folder as NSString).appendingPathComponent(ModelManifest.fileName)
        if let data = manager.contents(atPath: manifestPath) {
            do {
                manifest = try ModelManifest.parse(String(decoding: data, as: UTF8.self), file: "\(name)/\(ModelManifest.fileName)")
            } catch {
                throw ModelBuildError(error.diagnostic)
            }
        }
        if manifest.kind != .swift {
            return try dataModel(name: name, version: version, folder: folder, manifest: manifest, sourceNames: sourceNames)
        }
        guard sourceNames.contains("etls.swift") else {
            let hint =
                ["model.txt", "model.json"].filter { manager.fileExists(atPath: (folder as NSString).appendingPathComponent($0)) }
                .map { "; to serve \($0) instead, write kind: \($0 == "model.txt" ? "lightgbm" : "xgboost") in model.yaml" }.first ?? ""
            throw ModelBuildError(
                Diagnostic(
                    file: "\(name)/etls.swift",
                    message:
                        "etls.swift is missing: every model folder needs an etls.swift that declares the model type with init(path:) and transform_predict\(hint)"
                ))
        }
        var files: [ModelInspector.SourceFile] = []
        for source in sourceNames {
            let data = manager.contents(atPath: (folder as NSString).appendingPathComponent(source)) ?? Data()
            files.append(.init(name: "\(name)/\(source)", text: String(decoding: data, as: UTF8.self)))
        }
        var entryPoint: ModelEntryPoint
        do {
            entryPoint = try ModelInspector().entryPoint(
                in: files, function: manifest.entryFunction, typeName: manifest.entryType, manifestLine: manifest.entryTypeLine, model: name.rawValue
            )
        } catch {
            var located = error
            if located.diagnostic.file == "etls.swift" || located.diagnostic.file == ModelManifest.fileName {
                located.diagnostic.file = "\(name)/\(located.diagnostic.file!)"
            }
            throw located
        }
        return ModelDefinition(
            name: name,
            version: version,
            folder: folder,
            sources: sourceNames,
            manifest: manifest,
            entryPoint: entryPoint,
            moduleName: Self.moduleName(name: name, version: version, buildIdentity: buildIdentity)
        )
    }

    /// A `kind: lightgbm` or `kind: xgboost` folder (docs/models.md, "Models as data"): no sources of its own; the glue declares
    /// a type that loads the model file with the SDK's `TreeModel`. The file is read here once, so that a model the
    /// SDK cannot serve fails like a compile error, naming the file and the line, before anything is built.
    func dataModel(name: ModelName, version: String, folder: String, manifest: ModelManifest, sourceNames: [String]) throws(ModelBuildError)
        -> ModelDefinition
    {
        let settings = manifest.treeModel ?? TreeModelSettings(file: TreeModelSettings.defaultFile(for: manifest.kind))
        if sourceNames.contains("etls.swift") {
            throw ModelBuildError(
                Diagnostic(
                    file: "\(name)/\(ModelManifest.fileName)", line: manifest.kindLine,
                    message: "model.yaml says kind: \(manifest.kind), and the folder also has etls.swift; remove etls.swift to serve \(settings.file), "
                        + "or remove kind (and file) from model.yaml to serve the Swift model"))
        }
        let kind: TreeModel.Kind = manifest.kind == .xgboost ? .xgboost : .lightgbm
        let path = (folder as NSString).appendingPathComponent(settings.file)
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelBuildError(
                Diagnostic(
                    file: "\(name)/\(ModelManifest.fileName)", line: manifest.kindLine,
                    message: "the model file \(settings.file) is not in the folder; push it, or name the file with file: in model.yaml"))
        }
        let model: TreeModel
        do {
            model = try TreeModel(kind: kind, file: path, output: settings.output, classNames: settings.classNames, features: settings.features)
        } catch let error as TreeModelError {
            throw ModelBuildError(Diagnostic(file: "\(name)/\(settings.file)", line: error.line, message: error.message))
        } catch {
            throw ModelBuildError(Diagnostic(file: "\(name)/\(settings.file)", message: "\(error)"))
        }
        return ModelDefinition(
            name: name,
            version: version,
            folder: folder,
            sources: [],
            manifest: manifest,
            entryPoint: ModelEntryPoint(
                typeName: ServeModelsGenerator.treeModelType, file: "\(name)/\(settings.file)", line: 1, function: "transform_predict", argumentLabel: nil,
                initThrows: true, functionThrows: true, schemas: ModelSchemas(variables: model.variablesSchema, output: model.outputSchema)),
            moduleName: Self.moduleName(name: name, version: version, buildIdentity: buildIdentity)
        )
    }

    /// `AS_<name>_<hash>`: a valid Swift identifier, unique per version and build identity.
    public static func moduleName(name: ModelName, version: String, buildIdentity: String) -> String {
        let digest = SHA256.hash(data: Data("\(version)\n\(buildIdentity)\n\(PluginABI.version)".utf8))
        let hash = digest.prefix(6).map { String(format: "%02x", $0) }.joined()
        return "AS_\(name.rawValue.replacingOccurrences(of: "-", with: "_"))_\(hash)"
    }
}
