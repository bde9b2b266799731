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
struct SchemaBuilder {
    enum Direction {
        case decoding
        case encoding
    }

    let types: [String: TypeFacts]

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

    func schema(_ type: TypeReference, in scope: String, for direction: Direction) -> JSONValue {
        var visiting: Set<String> = []
        return build(type, scope: scope, direction: direction, visiting: &visiting)
    }

    private func build(_ type: TypeReference, scope: String, direction: Direction, visiting: inout Set<String>) -> JSONValue {
        switch type {
        case .optional(let wrapped):
            return Self.nullable(build(wrapped, scope: scope, direction: direction, visiting: &visiting))
        case .array(let element):
            return ["type": "array", "items": build(element, scope: scope, direction: direction, visiting: &visiting)]
        case .dictionary(let key, let value):
            guard case .named("String") = key else { return [:] }
            let values = build(value, scope: scope, direction: direction, visiting: &visiting)
            return values == [:] ? ModelSchemas.anyObject : ["type": "object", "additionalProperties": values]
        case .unknown:
            return [:]
        case .named(let name):
            if let primitive = Self.primitives[name] { return primitive }
            guard let (qualified, facts) = resolve(name, from: scope), let declaration = facts.declaration else { return [:] }
            if declaration.kind == "enum" { return enumeration(facts) }
            let custom =
                direction == .decoding
                ? facts.initializers.contains { $0.firstLabel == "from" } : facts.methods.contains { $0.name == "encode" && $0.firstLabel == "to" }
            guard !custom, !visiting.contains(qualified) else { return ModelSchemas.anyObject }
            visiting.insert(qualified)
            defer { visiting.remove(qualified) }
            let keys = types["\(qualified).CodingKeys"].map {
                Dictionary($0.cases.map { ($0.name, $0.rawValue ?? $0.name) }, uniquingKeysWith: { first, _ in first })
            }
            var properties: [String: JSONValue] = [:]
            var required: [JSONValue] = []
            for property in facts.properties {
                if direction == .decoding, property.isInitializedConstant { continue }
                let key: String
                if let keys {
                    guard let renamed = keys[property.name] else { continue }
                    key = renamed
                } else {
                    key = property.name
                }
                guard properties[key] == nil else { continue }
                let type = property.type ?? .unknown("")
                properties[key] = build(type, scope: qualified, direction: direction, visiting: &visiting)
                if case .optional = type {} else { required.append(.string(key)) }
            }
            var object: [String: JSONValue] = ["type": "object", "properties": .object(properties)]
            if !required.isEmpty { object["required"] = .array(required) }
            return .object(object)
        }
    }

    /// A raw-value enum: its raw values (the case names for a `String` enum without them).
    private func enumeration(_ facts: TypeFacts) -> JSONValue {
        if facts.inherited.contains("String") {
            return ["type": "string", "enum": .array(facts.cases.map { .string($0.rawValue ?? $0.name) })]
        }
        if facts.inherited.contains("Int") {
            var next = 0
            var values: [JSONValue] = []
            for item in facts.cases {
                let value = item.rawValue.flatMap { Int($0) } ?? next
                values.append(.number(Double(value)))
                next = value + 1
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
