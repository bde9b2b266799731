public import AutoServeModel
public import ServingCore
import Yams

/// A model's `model.yaml` (docs/models.md, "model.yaml"): the entry point, the examples run after every load, the timeout.
public struct ModelManifest: Sendable, Hashable, Codable {
    public var description: String?
    /// The type that declares the entry function; `nil` means the one found in the sources.
    public var entryType: String?
    public var entryTypeLine: Int?
    public var entryFunction: String = "transform_predict"
    public var examples: [ModelExample] = []
    public var timeoutMilliseconds: Int?
    /// Worker processes for this model under process isolation (default 1).
    public var workers: Int?
    /// Resident memory above which a worker is stopped and restarted (unset: no limit).
    public var memoryMegabytes: Int?
    /// Live drift: a reference sample in the folder and how many recent rows to compare with it.
    public var drift: DriftSettings?
    /// What the folder serves: Swift sources (the default), or a trained model file (docs/models.md, "Models as data").
    public var kind: ModelKind = .swift
    public var kindLine: Int?
    /// A data model's settings: its file, answer, class names and features.
    public var treeModel: TreeModelSettings?
    /// What the model asks beyond its sandbox (`sandbox: {network: true, read: [/data/ref]}`), served only when
    /// `SANDBOX_ALLOW` grants it (docs/operations.md, "The sandbox").
    public var sandbox: SandboxRequest?
    /// How the model's scores are explained (`explain: false`, or `explain: {top: 5, names: {...}}`,
    /// docs/explanations.md, "model.yaml").
    public var explain = ExplainSettings()

    /// The largest `timeout_ms`: a day, far beyond any row, and small enough that no deadline overflows.
    public static let maximumTimeoutMilliseconds = 86_400_000
    /// The largest `memory_mb`: 1 TiB, so that the limit in bytes never wraps.
    public static let maximumMemoryMegabytes = 1 << 20

    public init() {}

    public static let fileName = "model.yaml"
}

/// `explain:` in model.yaml: whether `{"explain": true}` is answered, how many features `top` lists, and the texts a
/// person reads for the features' names.
public struct ExplainSettings: Sendable, Hashable, Codable {
    public var enabled = true
    public var top = 5
    public var names: [String: String] = [:]

    public init(enabled: Bool = true, top: Int = 5, names: [String: String] = [:]) {
        self.enabled = enabled
        self.top = top
        self.names = names
    }

    /// The most features `top` may list, and the most reason texts.
    public static let maximumTop = 1000
    public static let maximumNames = 100_000
}

/// `sandbox:` in model.yaml: the network, and folders to read outside the model's own.
public struct SandboxRequest: Sendable, Hashable, Codable {
    public var network = false
    public var read: [String] = []

    public init(network: Bool = false, read: [String] = []) {
        self.network = network
        self.read = read
    }

    /// The most folders one model may ask to read.
    public static let maximumReadPaths = 16
}

/// `drift: {reference: reference.jsonl, window: 1000}` (docs/operations.md, "Live drift in /metrics").
public struct DriftSettings: Sendable, Hashable, Codable {
    /// A file of rows in the model folder (JSON Lines, an inference log, or CSV), relative to the folder.
    public var reference: String
    /// How many of the latest rows are compared with it.
    public var window = 1000

    public static let windowRange = 10...100_000
    /// The largest reference sample: the server reads it to lay out the bins.
    public static let maximumReferenceBytes = 64 << 20
}

/// `kind` in model.yaml.
public enum ModelKind: String, Sendable, Hashable, CaseIterable, Codable {
    case swift, lightgbm, xgboost
}

/// `file`, `output`, `class_names` and `features` of a `kind: lightgbm` or `kind: xgboost` folder.
public struct TreeModelSettings: Sendable, Hashable, Codable {
    /// The model file, relative to the folder.
    public var file: String
    public var output: TreeModel.Output?
    public var classNames: [String]?
    public var features: [String]?

    public init(file: String, output: TreeModel.Output? = nil, classNames: [String]? = nil, features: [String]? = nil) {
        self.file = file
        self.output = output
        self.classNames = classNames
        self.features = features
    }

    /// The file a kind reads unless `file` names another.
    public static func defaultFile(for kind: ModelKind) -> String { kind == .xgboost ? "model.json" : "model.txt" }
}

/// One example of `model.yaml`: variables to score and a subset the output must contain.
public struct ModelExample: Sendable, Hashable, Codable {
    public var variables: JSONValue
    public var expect: JSONValue?
    /// The example's line in `model.yaml`, for failure messages.
    public var line: Int

    public init(variables: JSONValue, expect: JSONValue?, line: Int) {
        self.variables = variables
        self.expect = expect
        self.line = line
    }
}

extension ModelManifest {
    /// Parses and validates a manifest; an unknown key or a wrong type is a diagnostic with its line.
    public static func parse(_ text: String, file: String) throws(ManifestError) -> ModelManifest {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ManifestError(Diagnostic(file: file, line: Self.line(of: error), message: "model.yaml is not valid YAML: \(Self.problem(of: error))"))
        } catch {
            throw ManifestError(Diagnostic(file: file, message: "model.yaml is not valid YAML: \(error)"))
        }
        var manifest = ModelManifest()
        guard let root else { return manifest }
        let reader = ManifestReader(file: file)
        let top = try reader.mapping(
            root, what: "model.yaml",
            allowed: [
                "description", "kind", "file", "output", "class_names", "features", "entrypoints", "examples", "timeout_ms", "workers", "memory_mb", "drift",
                "sandbox", "explain",
            ])
        if let node = top["description"] { manifest.description = try reader.string(node, key: "description") }
        try readKind(top, into: &manifest, reader: reader)
        if let node = top["entrypoints"] {
            guard manifest.kind == .swift else {
                throw reader.error(node, "entrypoints is for Swift models; a kind: \(manifest.kind) folder has no entry point to name")
            }
            let entrypoints = try reader.mapping(node, what: "entrypoints", allowed: ["predict"])
            if let predictNode = entrypoints["predict"] {
                let predict = try reader.mapping(predictNode, what: "entrypoints.predict", allowed: ["type", "function"])
                if let typeNode = predict["type"] {
                    manifest.entryType = try reader.identifier(typeNode, key: "entrypoints.predict.type", allowDots: true)
                    manifest.entryTypeLine = reader.line(typeNode)
                }
                if let functionNode = predict["function"] {
                    manifest.entryFunction = try reader.identifier(functionNode, key: "entrypoints.predict.function", allowDots: false)
                }
            }
        }
        if let node = top["examples"] {
            guard case .sequence(let sequence) = node else {
                throw reader.error(node, "examples must be a list of {variables: {...}, expect: {...}}")
            }
            for element in sequence {
                let example = try reader.mapping(element, what: "an example", allowed: ["variables", "expect"])
                guard let variablesNode = example["variables"] else {
                    throw reader.error(element, "an example needs variables: {...}, the row to score")
                }
                let variables = try reader.json(variablesNode)
                guard case .object = variables else { throw reader.error(variablesNode, "an example's variables must be a mapping") }
                var expect: JSONValue?
                if let expectNode = example["expect"] {
                    expect = try reader.json(expectNode)
                    guard case .object = expect else { throw reader.error(expectNode, "an example's expect must be a mapping of output fields") }
                }
                manifest.examples.append(ModelExample(variables: variables, expect: expect, line: reader.line(element) ?? 0))
            }
        }
        if let node = top["timeout_ms"] {
            guard let value = node.int, (1...Self.maximumTimeoutMilliseconds).contains(value), node.tag.rawValue == Tag.Name.int.rawValue else {
                throw reader.error(node, "timeout_ms must be a whole number of milliseconds from 1 to \(Self.maximumTimeoutMilliseconds) (24 h), like 2000")
            }
            manifest.timeoutMilliseconds = value
        }
        if let node = top["workers"] {
            guard let value = node.int, (1...64).contains(value), node.tag.rawValue == Tag.Name.int.rawValue else {
                throw reader.error(node, "workers must be a whole number from 1 to 64, like 2")
            }
            manifest.workers = value
        }
        if let node = top["memory_mb"] {
            guard let value = node.int, (1...Self.maximumMemoryMegabytes).contains(value), node.tag.rawValue == Tag.Name.int.rawValue else {
                throw reader.error(node, "memory_mb must be a whole number of megabytes from 1 to \(Self.maximumMemoryMegabytes) (1 TiB), like 512")
            }
            manifest.memoryMegabytes = value
        }
        if let node = top["drift"] {
            let drift = try reader.mapping(node, what: "drift", allowed: ["reference", "window"])
            guard let referenceNode = drift["reference"] else {
                throw reader.error(node, "drift needs reference: a file of rows in the model folder, like reference.jsonl")
            }
            let reference = try reader.string(referenceNode, key: "drift.reference")
            let parts = reference.split(separator: "/", omittingEmptySubsequences: false)
            guard !reference.hasPrefix("/"), !parts.contains(".."), !parts.contains(""), !reference.isEmpty else {
                throw reader.error(referenceNode, "drift.reference must be a path inside the model folder, like reference.jsonl or data/reference.csv")
            }
            var settings = DriftSettings(reference: reference)
            if let windowNode = drift["window"] {
                guard let value = windowNode.int, DriftSettings.windowRange.contains(value), windowNode.tag.rawValue == Tag.Name.int.rawValue else {
                    throw reader.error(windowNode, "drift.window must be a whole number of rows from 10 to 100000, like 1000")
                }
                settings.window = value
            }
            manifest.drift = settings
        }
        if let node = top["sandbox"] { manifest.sandbox = try readSandbox(node, reader: reader) }
        if let node = top["explain"] { manifest.explain = try readExplain(node, reader: reader) }
        return manifest
    }

    /// `explain: false`, `explain: true`, or `explain: {top: 5, names: {late_payments: Number of late payments}}`.
    static func readExplain(_ node: Node, reader: ManifestReader) throws(ManifestError) -> ExplainSettings {
        let shape = "explain must be true, false, or a mapping like {top: 5, names: {late_payments: Number of late payments}}"
        if node.tag.rawValue == Tag.Name.bool.rawValue, let enabled = node.bool { return ExplainSettings(enabled: enabled) }
        guard case .mapping = node else { throw reader.error(node, shape) }
        let fields = try reader.mapping(node, what: "explain", allowed: ["top", "names"])
        var settings = ExplainSettings()
        if let top = fields["top"] {
            guard let value = top.int, (1...ExplainSettings.maximumTop).contains(value), top.tag.rawValue == Tag.Name.int.rawValue else {
                throw reader.error(top, "explain.top must be a whole number of features from 1 to \(ExplainSettings.maximumTop), like 5")
            }
            settings.top = value
        }
        if let names = fields["names"] {
            guard case .mapping(let mapping) = names, mapping.count <= ExplainSettings.maximumNames else {
                throw reader.error(names, "explain.names must map feature names to the texts a person reads, like {late_payments: Number of late payments}")
            }
            for (key, value) in mapping {
                let feature = try reader.string(key, key: "explain.names")
                settings.names[feature] = try reader.string(value, key: "explain.names.\(feature)")
            }
        }
        return settings
    }

    /// `sandbox: {network: true, read: [/data/ref]}`: absolute, normalized paths, at most `SandboxRequest.maximumReadPaths`.
    static func readSandbox(_ node: Node, reader: ManifestReader) throws(ManifestError) -> SandboxRequest {
        let fields = try reader.mapping(node, what: "sandbox", allowed: ["network", "read"])
        var request = SandboxRequest()
        if let network = fields["network"] {
            guard let value = network.bool, network.tag.rawValue == Tag.Name.bool.rawValue else {
                throw reader.error(network, "sandbox.network must be true or false")
            }
            request.network = value
        }
        if let read = fields["read"] {
            guard case .sequence(let paths) = read, paths.count <= SandboxRequest.maximumReadPaths else {
                throw reader.error(read, "sandbox.read must be a list of at most \(SandboxRequest.maximumReadPaths) absolute paths, like [/data/reference]")
            }
            for element in paths {
                let path = try reader.string(element, key: "sandbox.read")
                let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
                guard path.hasPrefix("/"), path.count > 1, !parts.contains(".."), !parts.contains("."), !parts.contains(""), !path.contains(",") else {
                    throw reader.error(
                        element, "sandbox.read must hold absolute paths without '.', '..', '//' or ',', like /data/reference; '\(path)' is not one")
                }
                request.read.append(path)
            }
        }
        return request
    }

    /// `kind`, and the keys of a data model: `file` (a path inside the folder), `output`, `class_names`, `features`.
    static func readKind(_ top: [String: Node], into manifest: inout ModelManifest, reader: ManifestReader) throws(ManifestError) {
        let kinds = ModelKind.allCases.map(\.rawValue).joined(separator: ", ")
        if let node = top["kind"] {
            let text = try reader.string(node, key: "kind")
            guard let kind = ModelKind(rawValue: text) else { throw reader.error(node, "kind must be one of \(kinds), not '\(text)'") }
            manifest.kind = kind
            manifest.kindLine = reader.line(node)
        }
        guard manifest.kind != .swift else {
            for key in ["file", "output", "class_names", "features"] {
                if let node = top[key] {
                    throw reader.error(node, "\(key) is for a trained model file; add kind: lightgbm or kind: xgboost, or remove \(key)")
                }
            }
            return
        }
        var settings = TreeModelSettings(file: TreeModelSettings.defaultFile(for: manifest.kind))
        if let node = top["file"] {
            let file = try reader.string(node, key: "file")
            let parts = file.split(separator: "/", omittingEmptySubsequences: false)
            guard !file.hasPrefix("/"), !parts.contains(".."), !parts.contains(""), !file.isEmpty else {
                throw reader.error(node, "file must be a path inside the model folder, like \(settings.file)")
            }
            settings.file = file
        }
        if let node = top["output"] {
            let text = try reader.string(node, key: "output")
            guard let output = TreeModel.Output(rawValue: text) else {
                throw reader.error(node, "output must be one of \(TreeModel.Output.allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
            }
            settings.output = output
        }
        func names(_ key: String) throws(ManifestError) -> [String]? {
            guard let node = top[key] else { return nil }
            guard case .sequence(let sequence) = node, !sequence.isEmpty else { throw reader.error(node, "\(key) must be a list of names, like [a, b]") }
            var names: [String] = []
            for element in sequence {
                guard case .scalar(let scalar) = element, !scalar.string.isEmpty else { throw reader.error(element, "\(key) must hold names (strings)") }
                names.append(scalar.string)
            }
            return names
        }
        settings.classNames = try names("class_names")
        settings.features = try names("features")
        manifest.treeModel = settings
    }

    static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): mark.line
        default: nil
        }
    }

    static func problem(of error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _): problem
        default: "\(error)"
        }
    }
}

/// A manifest that cannot be used, as one diagnostic with its line.
public struct ManifestError: Error, Sendable {
    public var diagnostic: Diagnostic

    init(_ diagnostic: Diagnostic) { self.diagnostic = diagnostic }
}

/// Reads YAML nodes strictly: mappings with known keys, scalars of the expected type.
struct ManifestReader {
    let file: String

    func line(_ node: Node) -> Int? { node.mark?.line }

    func error(_ node: Node, _ message: String) -> ManifestError {
        ManifestError(Diagnostic(file: file, line: line(node), message: message))
    }

    func mapping(_ node: Node, what: String, allowed: [String]) throws(ManifestError) -> [String: Node] {
        guard case .mapping(let mapping) = node else { throw error(node, "\(what) must be a mapping") }
        var members: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.string, key.scalar != nil else { throw error(key, "\(what) has a key that is not a string") }
            guard allowed.contains(name) else {
                throw error(key, "unknown key '\(name)' in \(what); the keys allowed there are \(allowed.joined(separator: ", "))")
            }
            members[name] = value
        }
        return members
    }

    func string(_ node: Node, key: String) throws(ManifestError) -> String {
        guard case .scalar(let scalar) = node, node.tag.rawValue == Tag.Name.str.rawValue else { throw error(node, "\(key) must be a string") }
        return scalar.string
    }

    func identifier(_ node: Node, key: String, allowDots: Bool) throws(ManifestError) -> String {
        let value = try string(node, key: key)
        let parts = allowDots ? value.split(separator: ".", omittingEmptySubsequences: false).map(String.init) : [value]
        let valid = parts.allSatisfy { part in
            guard let first = part.unicodeScalars.first, first == "_" || first.properties.isAlphabetic else { return false }
            return part.unicodeScalars.allSatisfy { $0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0) }
        }
        guard valid else { throw error(node, "\(key) must be a Swift identifier, not '\(value)'") }
        return value
    }

    /// Converts YAML to JSON using the resolved tags, so `5.1` is a number and `"5.1"` a string.
    func json(_ node: Node) throws(ManifestError) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            switch Tag.Name(rawValue: node.tag.rawValue) {
            case .null: return .null
            case .bool: return .bool(node.bool ?? false)
            case .int, .float:
                guard let value = node.float, value.isFinite else { throw error(node, "'\(scalar.string)' is not a finite number") }
                return .number(value)
            default: return .string(scalar.string)
            }
        case .sequence(let sequence):
            var elements: [JSONValue] = []
            for element in sequence { elements.append(try json(element)) }
            return .array(elements)
        case .mapping(let mapping):
            var members: [String: JSONValue] = [:]
            for (key, value) in mapping {
                guard let name = key.string else { throw error(key, "a mapping key must be a string") }
                members[name] = try json(value)
            }
            return .object(members)
        case .alias:
            throw error(node, "YAML aliases are not supported in model.yaml; write the value out")
        }
    }
}
