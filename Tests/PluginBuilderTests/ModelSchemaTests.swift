import ServingCore
import Testing

@testable import PluginBuilder

/// README's "OpenAPI": the JSON Schemas the generator reads from a model's own types, as synthesized `Codable` and
/// the SDK's decoder treat them.
struct ModelSchemaTests {
    func schemas(_ source: String, more: [String: String] = [:]) throws -> ModelSchemas {
        let files =
            [ModelInspector.SourceFile(name: "M/etls.swift", text: source)] + more.map { ModelInspector.SourceFile(name: "M/\($0.key)", text: $0.value) }
        return try ModelInspector().entryPoint(in: files, function: "transform_predict", typeName: nil, manifestLine: nil).schemas
    }

    @Test func storedPropertiesWithTheirJSONTypesOptionalsNotRequired() throws {
        let schemas = try schemas(
            """
            import AutoServeModel
            struct Model {
                struct Variables: Decodable {
                    var amount: Double
                    let count: Int
                    var ratio: Float?
                    var name: String
                    var flag: Bool
                    var tags: [String]
                    var matrix: Array<[Double]>
                    var extra: [String: JSON]
                    var anything: JSON
                    var scores: [String: Int]?
                    var address: Address
                    let version = 2
                    var computed: Double { amount * 2 }
                    static var shared = 0
                    var observed: Int = 0 { didSet {} }
                    var `class`: String
                }
                struct Address: Codable { var city: String; var zip: Int? }
                init(path: String) {}
                func transform_predict(_ variables: Variables) -> [String: JSON] { [:] }
            }
            """)
        let variables = schemas.variables
        #expect(variables["type"] == "object")
        let properties = variables["properties"]
        #expect(properties?["amount"] == ["type": "number", "format": "double"])
        #expect(properties?["count"] == ["type": "integer", "format": "int64"])
        #expect(properties?["ratio"] == ["type": ["number", "null"], "format": "float"])
        #expect(properties?["name"] == ["type": "string"])
        #expect(properties?["flag"] == ["type": "boolean"])
        #expect(properties?["tags"] == ["type": "array", "items": ["type": "string"]])
        #expect(properties?["matrix"] == ["type": "array", "items": ["type": "array", "items": ["type": "number", "format": "double"]]])
        #expect(properties?["extra"] == ["type": "object"])
        #expect(properties?["anything"] == [:])
        #expect(properties?["scores"] == ["type": ["object", "null"], "additionalProperties": ["type": "integer", "format": "int64"]])
        #expect(
            properties?["address"]
                == [
                    "type": "object", "properties": ["city": ["type": "string"], "zip": ["type": ["integer", "null"], "format": "int64"]], "required": ["city"],
                ])
        #expect(properties?["observed"] == ["type": "integer", "format": "int64"])
        #expect(properties?["class"] == ["type": "string"])
        for absent in ["version", "computed", "shared"] { #expect(properties?[absent] == nil, "\(absent)") }
        let required = Set(variables["required"]?.array?.compactMap(\.string) ?? [])
        #expect(required == ["amount", "count", "name", "flag", "tags", "matrix", "extra", "anything", "address", "observed", "class"])
        #expect(schemas.output == ["type": "object"])
    }

    @Test func codingKeysEnumsNestedScopesOtherFilesAndOutputs() throws {
        let schemas = try schemas(
            """
            import AutoServeModel
            struct Scorer {
                init(path: String) throws {}
                func transform_predict(_ row: Features.Input) throws -> Answer { Answer(label: .high, score: 1) }
            }
            """,
            more: [
                "Types.swift": """
                enum Level: String, Codable { case low, high = "HIGH" }
                enum Grade: Int, Codable { case a = 1, b, c = 7 }
                struct Answer: Encodable {
                    var label: Level
                    var score: Double
                    let model = "v1"
                    var note: String?
                }
                enum Features {
                    struct Input: Decodable {
                        var level: Level
                        var grade: Grade?
                        var raw_amount: Double
                        var skipped: Int = 3
                        enum CodingKeys: String, CodingKey { case level, grade, raw_amount = "amount" }
                    }
                }
                """
            ])
        #expect(
            schemas.variables
                == [
                    "type": "object",
                    "properties": [
                        "level": ["type": "string", "enum": ["low", "HIGH"]], "grade": ["type": ["integer", "null"], "enum": [1, 2, 7, nil]],
                        "amount": ["type": "number", "format": "double"],
                    ],
                    "required": ["level", "amount"],
                ])
        // Encoding writes every stored property, a `let` with a value too.
        #expect(
            schemas.output
                == [
                    "type": "object",
                    "properties": [
                        "label": ["type": "string", "enum": ["low", "HIGH"]], "score": ["type": "number", "format": "double"], "model": [:],
                        "note": ["type": ["string", "null"]],
                    ],
                    "required": ["label", "score", "model"],
                ])
    }

    @Test func customDecodingRecursionAndUnknownTypesStayOpen() throws {
        let schemas = try schemas(
            """
            import AutoServeModel
            import Foundation
            struct M {
                struct Variables: Decodable {
                    var node: Node
                    var when: Date
                    var pair: (Int, Int)?
                    init(from decoder: Decoder) throws { fatalError() }
                }
                struct Node: Decodable { var children: [Node]; var value: Double }
                init(path: String) {}
                func transform_predict(_ v: Wrapper) -> [String: JSON] { [:] }
                struct Wrapper: Decodable { var node: Node }
            }
            """)
        // Node refers to itself: the inner occurrence is any object, so the schema is finite.
        #expect(
            schemas.variables["properties"]?["node"]
                == [
                    "type": "object",
                    "properties": ["children": ["type": "array", "items": ["type": "object"]], "value": ["type": "number", "format": "double"]],
                    "required": ["children", "value"],
                ])
        let custom = try self.schemas(
            """
            struct M {
                struct Variables: Decodable { var a: Int; init(from decoder: Decoder) throws { a = 1 } }
                init(path: String) {}
                func transform_predict(_ v: Variables) -> [String: JSON] { [:] }
            }
            """)
        #expect(custom.variables == ["type": "object"], "a type that decodes itself: the generator cannot tell its members")
    }
}
