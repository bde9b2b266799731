import Crypto
import Foundation
import PluginRuntime
public import ServingCore

/// Everything generated for one model version: the input of a plugin build and an entry of the registry.
public struct ModelDefinition: Sendable, Hashable {
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
        guard sourceNames.contains("etls.swift") else {
            throw ModelBuildError(
                Diagnostic(
                    file: "\(name)/etls.swift",
                    message: "etls.swift is missing: every model folder needs an etls.swift that declares the model type with init(path:) and transform_predict"
                ))
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
        var files: [ModelInspector.SourceFile] = []
        for source in sourceNames {
            let data = manager.contents(atPath: (folder as NSString).appendingPathComponent(source)) ?? Data()
            files.append(.init(name: "\(name)/\(source)", text: String(decoding: data, as: UTF8.self)))
        }
        var entryPoint: ModelEntryPoint
        do {
            entryPoint = try ModelInspector().entryPoint(
                in: files, function: manifest.entryFunction, typeName: manifest.entryType, manifestLine: manifest.entryTypeLine
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

    /// `AS_<name>_<hash>`: a valid Swift identifier, unique per version and build identity.
    public static func moduleName(name: ModelName, version: String, buildIdentity: String) -> String {
        let digest = SHA256.hash(data: Data("\(version)\n\(buildIdentity)\n\(PluginABI.version)".utf8))
        let hash = digest.prefix(6).map { String(format: "%02x", $0) }.joined()
        return "AS_\(name.rawValue.replacingOccurrences(of: "-", with: "_"))_\(hash)"
    }
}
