/// The JSON Schemas of a model's variables and of its output (README, "OpenAPI"): read from its Swift types by the
/// generator, or from a tree model's features; the OpenAPI document and the v2 metadata are made from them.
public struct ModelSchemas: Sendable, Hashable {
    /// Any JSON object: what a schema says when the sources do not show more.
    public static let anyObject: JSONValue = ["type": "object"]

    public var variables: JSONValue
    public var output: JSONValue

    public init(variables: JSONValue = anyObject, output: JSONValue = anyObject) {
        self.variables = variables
        self.output = output
    }
}
