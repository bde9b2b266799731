/// The JSON Schemas of a model's variables and of its output (docs/http-api.md, "OpenAPI"): read from its Swift types by the
/// generator, or from a tree model's features; the OpenAPI document and the v2 metadata are made from them.
public struct ModelSchemas: Sendable, Hashable, Codable {
    /// Any JSON object: what a schema says when the sources do not show more.
    public static let anyObject: JSONValue = ["type": "object"]

    public var variables: JSONValue
    public var output: JSONValue
    /// The types the two share or that contain themselves, by their name in the OpenAPI document's
    /// `components/schemas` (the model's name, a dot, the type's), which `$ref`s in them name.
    public var definitions: [String: JSONValue]

    public init(variables: JSONValue = anyObject, output: JSONValue = anyObject, definitions: [String: JSONValue] = [:]) {
        self.variables = variables
        self.output = output
        self.definitions = definitions
    }
}
