import ServingCore
import SwiftSyntax

/// A type as written in a model's sources, reduced to what its JSON looks like.
indirect enum TypeReference: Hashable {
    /// A type by name, as written (`Double`, `Iris.Variables`); generic arguments of other types are dropped.
    case named(String)
    case array(TypeReference)
    case dictionary(key: TypeReference, value: TypeReference)
    case optional(TypeReference)
    /// A tuple, a function, `some`/`any` ...: no JSON shape the generator can tell.
    case unknown(String)

    init(_ syntax: TypeSyntax) {
        if let optional = syntax.as(OptionalTypeSyntax.self) {
            self = .optional(TypeReference(optional.wrappedType))
        } else if let optional = syntax.as(ImplicitlyUnwrappedOptionalTypeSyntax.self) {
            self = .optional(TypeReference(optional.wrappedType))
        } else if let array = syntax.as(ArrayTypeSyntax.self) {
            self = .array(TypeReference(array.element))
        } else if let dictionary = syntax.as(DictionaryTypeSyntax.self) {
            self = .dictionary(key: TypeReference(dictionary.key), value: TypeReference(dictionary.value))
        } else if let attributed = syntax.as(AttributedTypeSyntax.self) {
            self = TypeReference(attributed.baseType)
        } else if let identifier = syntax.as(IdentifierTypeSyntax.self) {
            let arguments = identifier.genericArgumentClause?.arguments.compactMap { TypeSyntax($0.argument).map(TypeReference.init) } ?? []
            self = Self.generic(identifier.name.text, arguments)
        } else if let member = syntax.as(MemberTypeSyntax.self) {
            let arguments = member.genericArgumentClause?.arguments.compactMap { TypeSyntax($0.argument).map(TypeReference.init) } ?? []
            var name = member.baseType.trimmedDescription + "." + member.name.text
            for module in ["Swift.", "Foundation.", "AutoServeModel."] where name.hasPrefix(module) { name.removeFirst(module.count) }
            self = Self.generic(name, arguments)
        } else {
            self = .unknown(syntax.trimmedDescription)
        }
    }

    static func generic(_ name: String, _ arguments: [TypeReference]) -> TypeReference {
        switch (name, arguments.count) {
        case ("Optional", 1): .optional(arguments[0])
        case ("Array", 1), ("Set", 1), ("ContiguousArray", 1): .array(arguments[0])
        case ("Dictionary", 2): .dictionary(key: arguments[0], value: arguments[1])
        default: .named(name)
        }
    }
}

/// Turns the types of a model's sources into JSON Schemas (2020-12, as OpenAPI 3.1 has them), the way synthesized
/// `Codable` and the SDK's decoder read and write them: stored properties (a `let` with a value is not decoded),
/// `CodingKeys` renames, `Optional` not required (and `null` allowed), `String`/`Int` raw-value enums as `enum`,
/// `[String: JSON]` and `JSON` free-form. A type with its own `init(from:)`/`encode(to:)` is any object.
///
/// The sources are a stranger's: the work and the output are linear in them. A type used once is written in place; a
/// type used twice or more, or one that contains itself, is written once as a definition (the document's
/// `components/schemas`, named after the model) and referred to with `$ref`, so 30 structs each holding two of the
/// next make 31 definitions, not 2^30 copies. Nesting deeper than ``maximumDepth`` types is any value, and a
/// model whose schemas pass ``maximumBytes`` fails with that reason.
struct SchemaBuilder {
    enum Direction {
        case decoding
        case encoding
    }

    /// The most named types one inside another that a schema spells out; deeper ones are any value.
    static let maximumDepth = 64
    /// The most bytes of JSON a model's schemas may take (its variables', its output's and its definitions together).
    static let maximumBytes = 1 << 20

    let types: [String: TypeFacts]
    /// This model's definitions are `components/schemas/<prefix><Type>`: the model's name and a dot.
    let prefix: String

    /// What a walk of the types found: how often each type is referred to, and which contain themselves.
    private var uses: [String: Int] = [:]
    private var recursive: Set<String> = []
    /// The definitions written so far, by their key in `components/schemas`, and each type's key.
    private(set) var definitions: [String: JSONValue] = [:]
    private var keys: [String: String] = [:]

    init(types: [String: TypeFacts], prefix: String) {
        self.types = types
        self.prefix = prefix
    }

    static let primitives: [String: JSONValue] = [
        "Double": ["type": "number", "format": "double"], "Float64": ["type": "number", "format": "double"],
        "Float": ["type": "number", "format": "float"], "Float32": ["type": "number", "format": "float"], "CGFloat": ["type": "number"],
        "Decimal": ["type": "number"],
        "Int": ["type": "integer", "format": "int64"], "Int64": ["type": "integer", "format": "int64"], "UInt": ["type": "integer", "minimum": 0],
        "UInt64": ["type": "integer", "minimum": 0], "Int32": ["type": "integer", "format": "int32"], "UInt32": ["type": "integer", "minimum": 0],
        "Int16": ["type": "integer"], "UInt16": ["type": "integer", "minimum": 0], "Int8": ["type": "integer"], "UInt8": ["type": "integer", "minimum": 0],
        "String": ["type": "string"], "Character": ["type": "string", "minLength": 1, "maxLength": 1], "Substring": ["type": "string"],
        "UUID": ["type": "string", "format": "uuid"], "URL": ["type": "string", "format": "uri"],
        "Bool": ["type": "boolean"],
        "JSON": [:], "JSONValue": [:],
    ]

    /// The schema of `type` as written inside `scope`; the types it shares are added to ``definitions``.
    mutating func schema(_ type: TypeReference, in scope: String, for direction: Direction) -> JSONValue {
        uses = [:]
        recursive = []
        var path: [String] = []
        count(type, scope: scope, direction: direction, path: &path)
        // The root is written in place, even when it is also a definition (it contains itself, or is used again).
        if case .named(let name) = type, Self.primitives[name] == nil, let (qualified, _) = resolve(name, from: scope),
            (uses[qualified] ?? 0) > 1 || recursive.contains(qualified)
        {
            _ = reference(qualified, direction: direction, depth: 0)
            return definitions[key(qualified, direction)] ?? [:]
        }
        return build(type, scope: scope, direction: direction, depth: 0)
    }

    /// The bytes `schemas` and the definitions take as JSON.
    func size(of schemas: [JSONValue]) -> Int {
        (schemas + Array(definitions.values)).reduce(0) { $0 + $1.jsonText.utf8.count }
    }

    /// The members of a struct as Codable sees them: each key with its type, and whether it is optional.
    private func members(of qualified: String, _ facts: TypeFacts, direction: Direction) -> [(key: String, type: TypeReference)] {
        let renames = types["\(qualified).CodingKeys"].map {
            Dictionary($0.cases.map { ($0.name, $0.rawValue?.string ?? $0.name) }, uniquingKeysWith: { first, _ in first })
        }
        var seen: Set<String> = []
        var members: [(String, TypeReference)] = []
        for property in facts.properties {
            if direction == .decoding, property.isInitializedConstant { continue }
            let key: String
            if let renames {
                guard let renamed = renames[property.name] else { continue }
                key = renamed
            } else {
                key = property.name
            }
            guard seen.insert(key).inserted else { continue }
            members.append((key, property.type ?? .unknown("")))
        }
        return members
    }

    /// Whether a struct decodes (or encodes) itself: its members are then unknown.
    private func isCustom(_ facts: TypeFacts, _ direction: Direction) -> Bool {
        direction == .decoding
            ? facts.initializers.contains { $0.firstLabel == "from" } : facts.methods.contains { $0.name == "encode" && $0.firstLabel == "to" }
    }

    /// The first walk: counts the references to each named type (each type's members are walked once) and finds the
    /// types that contain themselves.
    private mutating func count(_ type: TypeReference, scope: String, direction: Direction, path: inout [String]) {
        switch type {
        case .optional(let wrapped), .array(let wrapped): count(wrapped, scope: scope, direction: direction, path: &path)
        case .dictionary(let key, let value):
            if case .named("String") = key { count(value, scope: scope, direction: direction, path: &path) }
        case .unknown: return
        case .named(let name):
            guard Self.primitives[name] == nil, let (qualified, facts) = resolve(name, from: scope), let declaration = facts.declaration else { return }
            if path.contains(qualified) { recursive.insert(qualified) }
            uses[qualified, default: 0] += 1
            guard uses[qualified] == 1, declaration.kind != "enum", !isCustom(facts, direction), path.count < Self.maximumDepth else { return }
            path.append(qualified)
            for member in members(of: qualified, facts, direction: direction) { count(member.type, scope: qualified, direction: direction, path: &path) }
            path.removeLast()
        }
    }

    private mutating func build(_ type: TypeReference, scope: String, direction: Direction, depth: Int) -> JSONValue {
        switch type {
        case .optional(let wrapped):
            return Self.nullable(build(wrapped, scope: scope, direction: direction, depth: depth))
        case .array(let element):
            return ["type": "array", "items": build(element, scope: scope, direction: direction, depth: depth)]
        case .dictionary(let key, let value):
            guard case .named("String") = key else { return [:] }
            let values = build(value, scope: scope, direction: direction, depth: depth)
            return values == [:] ? ModelSchemas.anyObject : ["type": "object", "additionalProperties": values]
        case .unknown:
            return [:]
        case .named(let name):
            if let primitive = Self.primitives[name] { return primitive }
            guard let (qualified, _) = resolve(name, from: scope) else { return [:] }
            if (uses[qualified] ?? 0) > 1 || recursive.contains(qualified) { return reference(qualified, direction: direction, depth: depth) }
            return body(qualified, direction: direction, depth: depth)
        }
    }

    /// `{"$ref": ...}` to the type's definition, written the first time it is referred to.
    private mutating func reference(_ qualified: String, direction: Direction, depth: Int) -> JSONValue {
        let key = key(qualified, direction)
        if definitions[key] == nil {
            definitions[key] = [:]  // a type that contains itself refers to this entry while it is being written
            definitions[key] = body(qualified, direction: direction, depth: depth)
        }
        return ["$ref": .string("#/components/schemas/\(key)")]
    }

    /// A named type's own schema: an enum's values, a struct's members.
    private mutating func body(_ qualified: String, direction: Direction, depth: Int) -> JSONValue {
        guard let facts = types[qualified], let declaration = facts.declaration else { return [:] }
        if declaration.kind == "enum" { return Self.enumeration(facts) }
        guard !isCustom(facts, direction), depth < Self.maximumDepth else { return ModelSchemas.anyObject }
        var properties: [String: JSONValue] = [:]
        var required: [JSONValue] = []
        for (key, type) in members(of: qualified, facts, direction: direction) {
            properties[key] = build(type, scope: qualified, direction: direction, depth: depth + 1)
            if case .optional = type {} else { required.append(.string(key)) }
        }
        var object: [String: JSONValue] = ["type": "object", "properties": .object(properties)]
        if !required.isEmpty { object["required"] = .array(required) }
        return .object(object)
    }

    /// The name of a type's definition: the model's prefix and the type's name, in the characters OpenAPI allows in a
    /// component's name (`[A-Za-z0-9._-]`), apart from every other type's; an output's own when it differs.
    private mutating func key(_ qualified: String, _ direction: Direction) -> String {
        let identity = direction == .decoding ? qualified : "\(qualified) (output)"
        if let key = keys[identity] { return key }
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
        let base = prefix + String(qualified.map { allowed.contains($0) ? $0 : "_" }) + (direction == .decoding ? "" : ".output")
        var key = base
        var number = 1
        while keys.values.contains(key) {
            number += 1
            key = "\(base)_\(number)"
        }
        keys[identity] = key
        return key
    }

    /// A raw-value enum: its raw values as Swift gives them (docs/http-api.md, "OpenAPI"): a `String` case without one is its
    /// name; an `Int` case without one is the previous value plus one (0 for the first). A value Swift would refuse
    /// (an overflow, a literal that does not fit) leaves the type as any string or integer: the compiler says why.
    static func enumeration(_ facts: TypeFacts) -> JSONValue {
        if facts.inherited.contains("String") {
            var values: [JSONValue] = []
            for item in facts.cases {
                switch item.rawValue {
                case nil: values.append(.string(item.name))
                case .string(let text?)?: values.append(.string(text))
                default: return ["type": "string"]
                }
            }
            return ["type": "string", "enum": .array(values)]
        }
        if facts.inherited.contains("Int") {
            var previous: Int?
            var values: [JSONValue] = []
            for item in facts.cases {
                let value: Int
                switch item.rawValue {
                case .integer(let written?)?: value = written
                case nil:
                    guard let last = previous else {
                        value = 0
                        break
                    }
                    let (next, overflow) = last.addingReportingOverflow(1)
                    guard !overflow else { return ["type": "integer"] }
                    value = next
                default: return ["type": "integer"]
                }
                values.append(.number(Double(value)))
                previous = value
            }
            return ["type": "integer", "enum": .array(values)]
        }
        return [:]
    }

    /// The type `name` means where it is written inside `scope`: the innermost declaration that matches.
    private func resolve(_ name: String, from scope: String) -> (String, TypeFacts)? {
        var prefix = scope.split(separator: ".").map(String.init)
        while true {
            let candidate = (prefix + [name]).joined(separator: ".")
            if let facts = types[candidate], facts.declaration != nil { return (candidate, facts) }
            if prefix.isEmpty { return nil }
            prefix.removeLast()
        }
    }

    /// The schema that also allows `null`, as an `Optional` decodes it.
    static func nullable(_ schema: JSONValue) -> JSONValue {
        guard case .object(var object) = schema, object != [:] else { return schema }
        if case .string(let type)? = object["type"] {
            object["type"] = [.string(type), "null"]
            if case .array(let values)? = object["enum"] { object["enum"] = .array(values + [.null]) }
            return .object(object)
        }
        return ["anyOf": [schema, ["type": "null"]]]
    }
}
