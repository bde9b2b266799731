public import ModelSource
public import ServingCore

/// What the adapter makes of one aspired version: how to load it, and what the index shows of it.
public struct Loadable: Sendable {
    /// The model's Swift type, for the index.
    public var typeName: String
    /// The manifest's `description`.
    public var summary: String?
    /// Loads the version (`init(path:)`, then the manifest's examples); the manager calls it once.
    public var load: @Sendable () async throws(ModelBuildError) -> any ModelRunner
    /// The version's live drift, when its `model.yaml` has a reference sample.
    public var drift: (any DriftObserving)?
    /// Its variables' and output's JSON Schemas, and the variables of its manifest's first example (docs/http-api.md, "OpenAPI").
    public var schemas: ModelSchemas
    public var example: JSONValue?
    /// Why the version does not explain its scores, or `nil` when it does (docs/explanations.md).
    public var explainRefusal: String?

    public init(
        typeName: String, summary: String?, drift: (any DriftObserving)? = nil, schemas: ModelSchemas = ModelSchemas(), example: JSONValue? = nil,
        explainRefusal: String? = nil, load: @escaping @Sendable () async throws(ModelBuildError) -> any ModelRunner
    ) {
        self.explainRefusal = explainRefusal
        self.typeName = typeName
        self.summary = summary
        self.drift = drift
        self.schemas = schemas
        self.example = example
        self.load = load
    }
}

/// The SourceAdapter stage: turns a version the source aspires to serve into something the manager can load.
public protocol SourceAdapter: Sendable {
    func adapt(_ folder: ModelFolder) async throws(ModelBuildError) -> Loadable
}
