import ServingCore
import Testing

@testable import PluginBuilder

/// docs/http-api.md's "OpenAPI": the JSON Schemas the generator reads from a model's own types, as synthesized `Codable` and
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
        // Node refers to itself: it is a definition of its own, which refers to itself, so the schema is finite.
        #expect(schemas.variables["properties"]?["node"] == ["$ref": "#/components/schemas/Model.M.Node"])
        #expect(
            schemas.definitions
                == [
                    "Model.M.Node": [
                        "type": "object",
                        "properties": [
                            "children": ["type": "array", "items": ["$ref": "#/components/schemas/Model.M.Node"]],
                            "value": ["type": "number", "format": "double"],
                        ],
                        "required": ["children", "value"],
                    ]
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

    /// Raw values as Swift gives them: hexadecimal, negative, implicit after explicit, `Int.max` without overflow;
    /// string escapes (and raw strings) decoded, in enums and `CodingKeys` alike.
    @Test func rawValuesAreSwiftsOwn() throws {
        let schemas = try schemas(
            #"""
            struct M {
                enum Level: Int, Decodable { case low = -3, mid, high = 0x10, top, big = 1_000, bin = 0b101, last }
                enum Extreme: Int, Decodable { case top = 9223372036854775807, bottom = -9223372036854775808 }
                enum Overflowing: Int, Decodable { case top = 9223372036854775807, past }
                enum Text: String, Decodable { case tab = "a\tb", unicode = "\u{41}", quote = "\"", raw = #"x\ny"#, plain }
                struct Variables: Decodable {
                    var level: Level
                    var extreme: Extreme
                    var overflowing: Overflowing
                    var text: Text
                    var renamed: Int
                    enum CodingKeys: String, CodingKey { case level, extreme, overflowing, text, renamed = "re\u{6E}amed\n" }
                }
                init(path: String) {}
                func transform_predict(_ v: Variables) -> [String: JSON] { [:] }
            }
            """#)
        let properties = schemas.variables["properties"]
        #expect(properties?["level"] == ["type": "integer", "enum": [-3, -2, 16, 17, 1000, 5, 6]])
        #expect(properties?["extreme"] == ["type": "integer", "enum": [.number(Double(Int.max)), .number(Double(Int.min))]])
        #expect(properties?["overflowing"] == ["type": "integer"], "Swift refuses the implicit value after Int.max: no enum is claimed")
        #expect(properties?["text"] == ["type": "string", "enum": ["a\tb", "A", "\"", "x\\ny", "plain"]])
        #expect(properties?["renamed\n"] == ["type": "integer", "format": "int64"])
    }

    /// 30 structs each holding two of the next: 2^30 paths, 31 definitions (this once kept a model loading for ever
    /// while the server grew toward the out-of-memory killer).
    @Test func sharedTypesAreWrittenOnce() throws {
        let levels = 30
        var source = "struct M {\n    init(path: String) {}\n    func transform_predict(_ v: S0) -> [String: JSON] { [:] }\n}\n"
        for level in 0..<levels { source += "struct S\(level): Decodable { var a: S\(level + 1)?; var b: S\(level + 1)? }\n" }
        source += "struct S\(levels): Decodable { var x: Double }\n"
        let schemas = try schemas(source)
        #expect(schemas.variables["properties"]?["a"] == ["anyOf": [["$ref": "#/components/schemas/Model.S1"], ["type": "null"]]])
        #expect(schemas.definitions.count == levels)
        #expect(schemas.definitions["Model.S30"] == ["type": "object", "properties": ["x": ["type": "number", "format": "double"]], "required": ["x"]])
        #expect(schemas.variables.jsonText.utf8.count + schemas.definitions.values.reduce(0) { $0 + $1.jsonText.utf8.count } < 10_000)
    }

    /// A property whose JSON key is `$ref` (through `CodingKeys`) is a property like any other: its schema sits
    /// under `properties`, beside the references to shared types (the schema fuzzer's oracle once took it for one).
    @Test func aPropertyNamedRefIsAProperty() throws {
        let source = """
            struct M {
                struct Variables: Decodable {
                    var a: Double
                    var b: Shared
                    var c: Shared
                    enum CodingKeys: String, CodingKey { case a = "$ref", b, c }
                }
                struct Shared: Decodable { var x: Double }
                init(path: String) {}
                func transform_predict(_ v: Variables) -> [String: JSON] { [:] }
            }
            """
        let schemas = try schemas(source)
        #expect(schemas.variables["properties"]?["$ref"] == ["type": "number", "format": "double"], "\(schemas.variables.jsonText)")
        #expect(schemas.variables["properties"]?["b"]?["$ref"] == "#/components/schemas/Model.M.Shared", "\(schemas.variables.jsonText)")
    }

    /// A chain of types deeper than the bound ends in any value; a model whose schemas pass the size bound fails,
    /// saying so.
    @Test func depthAndSizeAreBounded() throws {
        var deep = "struct M {\n    init(path: String) {}\n    func transform_predict(_ v: D0) -> [String: JSON] { [:] }\n}\n"
        for level in 0..<200 { deep += "struct D\(level): Decodable { var next: D\(level + 1) }\n" }
        var schema = try schemas(deep).variables
        var depth = 0
        while let next = schema["properties"]?["next"] {
            schema = next
            depth += 1
        }
        #expect(depth == SchemaBuilder.maximumDepth)
        #expect(schema == ["type": "object"])

        // 9,000 members of 100-character names: over a megabyte of schema (fewer, longer names parse faster).
        let fields = (0..<9_000).map { "var field_\(String(repeating: "x", count: 90))_\($0): Double" }.joined(separator: "; ")
        let wide =
            "struct M {\n    struct Variables: Decodable { \(fields) }\n    init(path: String) {}\n"
            + "    func transform_predict(_ v: Variables) -> [String: JSON] { [:] }\n}\n"
        let error = #expect(throws: ModelBuildError.self) { try self.schemas(wide) }
        #expect(error?.diagnostic.message.contains("more than the 1048576 a model's OpenAPI description may take") == true)
    }
}
