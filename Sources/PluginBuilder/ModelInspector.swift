import Foundation
public import ServingCore
import SwiftParser
import SwiftSyntax

/// What the glue needs to know about a model's type, read from its sources.
public struct ModelEntryPoint: Sendable, Hashable, Codable {
    /// The type's name as the glue spells it (`Outer.Inner` for a nested type).
    public var typeName: String
    public var file: String
    public var line: Int
    public var function: String
    /// The external label of the function's parameter; `nil` for `_`.
    public var argumentLabel: String?
    public var initThrows: Bool
    public var functionThrows: Bool
    /// The type's `func explain(_ variables: Variables) -> Explanation`, when it declares one (docs/explanations.md,
    /// "Swift models").
    public var explain: ExplainFunction?
    /// The JSON Schemas of the variables and of the output, as far as the sources show them (docs/http-api.md, "OpenAPI").
    public var schemas = ModelSchemas()
}

/// A model type's explain function: the label of its parameter (`nil` for `_`) and whether it throws.
public struct ExplainFunction: Sendable, Hashable, Codable {
    public var argumentLabel: String?
    public var throwing: Bool
}

/// Finds the one type that declares the entry function and `init(path:)`, by parsing the sources.
///
/// Parsing (swift-syntax), not pattern matching, so comments, strings, extensions and nested types are
/// read as the compiler reads them. Members declared in extensions count for the type they extend.
public struct ModelInspector {
    /// One source file: its name inside the model folder and its text.
    public struct SourceFile: Sendable {
        public var name: String
        public var text: String

        public init(name: String, text: String) {
            self.name = name
            self.text = text
        }
    }

    public init() {}

    /// The deepest nesting of `[` a source may have. swift-syntax's lookahead takes exponential time in it (18 levels
    /// took a second, 26 never ended in the schema fuzzer); a model's types and literals need a handful.
    static let maximumBracketDepth = 12

    /// The line where `[` first nests deeper than `maximumBracketDepth`, or `nil`. Every `[` counts, in comments and
    /// string literals too: an interpolation in a string is parsed as code, and a scanner that skipped strings or
    /// comments could be made to skip code (an unterminated `"` ends at its line for the parser).
    static func bracketsTooDeep(_ text: String) -> Int? {
        var depth = 0
        var line = 1
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "["):
                depth += 1
                if depth > maximumBracketDepth { return line }
            case UInt8(ascii: "]"): depth = max(0, depth - 1)
            case UInt8(ascii: "\n"): line += 1
            default: break
            }
        }
        return nil
    }

    /// The entry point of the model `model` (its name prefixes the definitions of its schemas).
    public func entryPoint(
        in files: [SourceFile], function: String, typeName: String?, manifestLine: Int?, model: String = "Model"
    ) throws(ModelBuildError) -> ModelEntryPoint {
        var types: [String: TypeFacts] = [:]
        for file in files {
            if let line = Self.bracketsTooDeep(file.text) {
                throw ModelBuildError(
                    Diagnostic(
                        file: file.name, line: line,
                        message: "square brackets nested more than \(Self.maximumBracketDepth) deep; Swift's parser takes time exponential in "
                            + "their depth (swift-syntax's lookahead for inline array types), so such a file is refused before it is parsed: "
                            + "name the inner types with typealiases"))
            }
            let tree = Parser.parse(source: file.text)
            let collector = DeclarationCollector(file: file.name, converter: SourceLocationConverter(fileName: file.name, tree: tree))
            collector.walk(tree)
            for (name, facts) in collector.types { types[name, default: TypeFacts()].merge(facts) }
        }
        let chosen: (name: String, facts: TypeFacts)
        if let typeName {
            guard let facts = types[typeName], facts.declaration != nil else {
                throw ModelBuildError(
                    Diagnostic(
                        file: ModelManifest.fileName, line: manifestLine,
                        message: "entrypoints.predict.type names '\(typeName)', but no source declares a type of that name"
                    ))
            }
            chosen = (typeName, facts)
        } else {
            let candidates = types.filter { $0.value.declaration != nil && !$0.value.functions(named: function).isEmpty }
                .sorted { ($0.value.declaration!.file, $0.value.declaration!.line) < ($1.value.declaration!.file, $1.value.declaration!.line) }
            guard let first = candidates.first else {
                throw ModelBuildError(
                    Diagnostic(
                        file: "etls.swift",
                        message: "no type declares \(function); declare one type with init(path: String) throws and "
                            + "func \(function)(_ variables: Variables) throws -> [String: JSON]"
                    ))
            }
            guard candidates.count == 1 else {
                let list = candidates.map { "\($0.key) (\($0.value.declaration!.file):\($0.value.declaration!.line))" }.joined(separator: ", ")
                throw ModelBuildError(
                    Diagnostic(
                        file: first.value.declaration!.file, line: first.value.declaration!.line,
                        message: "several types declare \(function): \(list); keep one, or name it in model.yaml under entrypoints.predict.type"
                    ))
            }
            chosen = (first.key, first.value)
        }
        var entry = try validate(chosen.name, chosen.facts, function: function)
        let method = chosen.facts.functions(named: function)[0]
        var builder = SchemaBuilder(types: types, prefix: "\(model).")
        let variables = method.parameterType.map { builder.schema($0, in: chosen.name, for: .decoding) } ?? ModelSchemas.anyObject
        let output = method.returnType.map { builder.schema($0, in: chosen.name, for: .encoding) } ?? ModelSchemas.anyObject
        let bytes = builder.size(of: [variables, output])
        guard bytes <= SchemaBuilder.maximumBytes else {
            throw ModelBuildError(
                Diagnostic(
                    file: method.file, line: method.line,
                    message: "the JSON Schemas of \(chosen.name).\(function)'s types take \(bytes) bytes, more than the \(SchemaBuilder.maximumBytes) "
                        + "a model's OpenAPI description may take; give the variables fewer members or fewer distinct types"))
        }
        entry.schemas = ModelSchemas(variables: variables, output: output, definitions: builder.definitions)
        return entry
    }

    func validate(_ name: String, _ facts: TypeFacts, function: String) throws(ModelBuildError) -> ModelEntryPoint {
        let declaration = facts.declaration!
        func fail(_ message: String, file: String? = nil, line: Int? = nil) -> ModelBuildError {
            ModelBuildError(Diagnostic(file: file ?? declaration.file, line: line ?? declaration.line, message: message))
        }
        guard declaration.kind != "actor" else {
            throw fail("\(name) is an actor; a model type must be a struct, class or enum (transform_predict runs concurrently and synchronously)")
        }
        guard !declaration.isGeneric else { throw fail("\(name) is generic; the model type must be a concrete type") }
        let functions = facts.functions(named: function)
        guard let entry = functions.first else {
            throw fail("\(name) has no method \(function); add func \(function)(_ variables: Variables) throws -> [String: JSON]")
        }
        guard functions.count == 1 else {
            throw fail(
                "\(name) declares \(function) \(functions.count) times; keep one so the generated glue calls an unambiguous method", file: entry.file,
                line: entry.line)
        }
        guard !entry.isStatic else { throw fail("\(name).\(function) is static; make it an instance method", file: entry.file, line: entry.line) }
        guard !entry.isMutating else {
            throw fail(
                "\(name).\(function) is mutating; it may run concurrently from several threads, so it must not mutate the model", file: entry.file,
                line: entry.line)
        }
        guard !entry.isAsync else { throw fail("\(name).\(function) is async; make it synchronous", file: entry.file, line: entry.line) }
        guard entry.requiredParameters == 1 else {
            throw fail(
                "\(name).\(function) must take exactly one parameter, the variables (it takes \(entry.requiredParameters))", file: entry.file, line: entry.line)
        }
        let initializers = facts.initializers.filter { $0.firstLabel == "path" && $0.requiredParameters == 1 }
        guard let initializer = initializers.first else {
            throw fail("\(name) has no init(path: String); add init(path: String) throws, which loads the model's artifacts from its folder")
        }
        guard !initializer.isFailable else {
            throw fail(
                "\(name).init(path:) is failable; make it throw an error that says what is missing instead", file: initializer.file, line: initializer.line)
        }
        guard !initializer.isAsync else { throw fail("\(name).init(path:) is async; make it synchronous", file: initializer.file, line: initializer.line) }
        var point = ModelEntryPoint(
            typeName: name,
            file: declaration.file,
            line: declaration.line,
            function: function,
            argumentLabel: entry.firstLabel == "_" ? nil : entry.firstLabel,
            initThrows: initializer.isThrowing,
            functionThrows: entry.isThrowing
        )
        point.explain = try explainFunction(name, facts, variables: entry.parameterType)
        return point
    }

    /// The type's `explain`: a method named so that returns `Explanation` (any other `explain` is the model's own
    /// business), which must then take the variables as the entry function does and be callable like it.
    func explainFunction(_ name: String, _ facts: TypeFacts, variables: TypeReference?) throws(ModelBuildError) -> ExplainFunction? {
        let candidates = facts.functions(named: "explain").filter { $0.returnType == .named("Explanation") }
        guard let explain = candidates.first else { return nil }
        func fail(_ problem: String) -> ModelBuildError {
            ModelBuildError(
                Diagnostic(
                    file: explain.file, line: explain.line,
                    message:
                        "\(name).explain \(problem); declare func explain(_ variables: Variables) -> Explanation (it may throw), as docs/explanations.md shows")
            )
        }
        guard candidates.count == 1 else { throw fail("is declared \(candidates.count) times") }
        guard !explain.isStatic, !explain.isMutating, !explain.isAsync else { throw fail("must be a synchronous, non-mutating instance method") }
        guard explain.requiredParameters == 1 else { throw fail("must take exactly one parameter, the variables") }
        if let variables, let parameter = explain.parameterType, parameter != variables {
            throw fail("takes \(parameter), and transform_predict takes \(variables); both take the same variables")
        }
        return ExplainFunction(argumentLabel: explain.firstLabel == "_" ? nil : explain.firstLabel, throwing: explain.isThrowing)
    }
}

/// What the sources say about one type, from its declaration and its extensions.
struct TypeFacts {
    struct Declaration {
        var kind: String
        var file: String
        var line: Int
        var isGeneric: Bool
    }

    struct Callable {
        var name: String
        var file: String
        var line: Int
        var firstLabel: String?
        var requiredParameters: Int
        var isThrowing: Bool
        var isAsync: Bool
        var isStatic: Bool
        var isMutating: Bool
        var isFailable: Bool
        /// The first parameter's type and the result type, for the schemas.
        var parameterType: TypeReference? = nil
        var returnType: TypeReference? = nil
    }

    /// A stored property, as synthesized `Codable` sees it.
    struct Property {
        var name: String
        var type: TypeReference?
        /// A `let` with an initial value: encoded, but never decoded.
        var isInitializedConstant: Bool
    }

    var declaration: Declaration?
    var methods: [Callable] = []
    var initializers: [Callable] = []
    var properties: [Property] = []
    /// The types it inherits from or conforms to, as written (`Decodable`, `String`, ...).
    var inherited: [String] = []
    /// An enum's cases with their raw values (`nil` without one).
    var cases: [(name: String, rawValue: RawValue?)] = []

    /// An enum case's raw value, read as Swift reads it.
    enum RawValue {
        /// An integer literal (`-3`, `0x10`, `1_000`); `nil` when it does not fit an `Int`.
        case integer(Int?)
        /// A string literal with its escapes decoded; `nil` when it interpolates.
        case string(String?)
        /// Anything else (a float, a character, an expression).
        case other

        var string: String? {
            if case .string(let text) = self { text } else { nil }
        }
    }

    func functions(named name: String) -> [Callable] { methods.filter { $0.name == name } }

    mutating func merge(_ other: TypeFacts) {
        if declaration == nil { declaration = other.declaration }
        methods += other.methods
        initializers += other.initializers
        properties += other.properties
        inherited += other.inherited
        cases += other.cases
    }
}

/// Walks a file and records every type declaration and the methods and initializers of each type.
final class DeclarationCollector: SyntaxVisitor {
    let file: String
    let converter: SourceLocationConverter
    var scope: [String] = []
    var types: [String: TypeFacts] = [:]

    init(file: String, converter: SourceLocationConverter) {
        self.file = file
        self.converter = converter
        super.init(viewMode: .sourceAccurate)
    }

    func line(_ node: some SyntaxProtocol) -> Int { node.startLocation(converter: converter).line }

    func enterType(_ name: String, kind: String, isGeneric: Bool, inherited: InheritanceClauseSyntax?, node: some SyntaxProtocol) {
        scope.append(name)
        let qualified = scope.joined(separator: ".")
        if types[qualified]?.declaration == nil {
            types[qualified, default: TypeFacts()].declaration = .init(kind: kind, file: file, line: line(node), isGeneric: isGeneric)
        }
        types[qualified, default: TypeFacts()].inherited += inherited?.inheritedTypes.map(\.type.trimmedDescription) ?? []
    }

    override func visit(_ node: StructDeclSyntax) -> SyntaxVisitorContinueKind {
        enterType(node.name.text, kind: "struct", isGeneric: node.genericParameterClause != nil, inherited: node.inheritanceClause, node: node)
        return .visitChildren
    }
    override func visitPost(_ node: StructDeclSyntax) { scope.removeLast() }

    override func visit(_ node: ClassDeclSyntax) -> SyntaxVisitorContinueKind {
        enterType(node.name.text, kind: "class", isGeneric: node.genericParameterClause != nil, inherited: node.inheritanceClause, node: node)
        return .visitChildren
    }
    override func visitPost(_ node: ClassDeclSyntax) { scope.removeLast() }

    override func visit(_ node: EnumDeclSyntax) -> SyntaxVisitorContinueKind {
        enterType(node.name.text, kind: "enum", isGeneric: node.genericParameterClause != nil, inherited: node.inheritanceClause, node: node)
        return .visitChildren
    }
    override func visitPost(_ node: EnumDeclSyntax) { scope.removeLast() }

    override func visit(_ node: ActorDeclSyntax) -> SyntaxVisitorContinueKind {
        enterType(node.name.text, kind: "actor", isGeneric: node.genericParameterClause != nil, inherited: node.inheritanceClause, node: node)
        return .visitChildren
    }
    override func visitPost(_ node: ActorDeclSyntax) { scope.removeLast() }

    override func visit(_ node: ExtensionDeclSyntax) -> SyntaxVisitorContinueKind {
        scope.append(node.extendedType.trimmedDescription)
        types[scope.joined(separator: "."), default: TypeFacts()].inherited += node.inheritanceClause?.inheritedTypes.map(\.type.trimmedDescription) ?? []
        return .visitChildren
    }

    /// A stored property of the type being walked (computed and static ones are not part of its JSON).
    override func visit(_ node: VariableDeclSyntax) -> SyntaxVisitorContinueKind {
        guard !scope.isEmpty, !node.modifiers.contains(where: { ["static", "class"].contains($0.name.text) }) else { return .skipChildren }
        let isLet = node.bindingSpecifier.tokenKind == .keyword(.let)
        for binding in node.bindings {
            if let accessors = binding.accessorBlock {
                // `{ get ... }` or a bare getter is computed; willSet/didSet observe a stored property.
                if case .accessors(let list) = accessors.accessors {
                    guard list.allSatisfy({ ["willSet", "didSet"].contains($0.accessorSpecifier.text) }) else { continue }
                } else {
                    continue
                }
            }
            guard let name = binding.pattern.as(IdentifierPatternSyntax.self)?.identifier.text else { continue }
            types[scope.joined(separator: "."), default: TypeFacts()].properties.append(
                .init(
                    name: name.trimmingCharacters(in: CharacterSet(charactersIn: "`")),
                    type: binding.typeAnnotation.map { TypeReference($0.type) },
                    isInitializedConstant: isLet && binding.initializer != nil))
        }
        return .skipChildren
    }

    override func visit(_ node: EnumCaseDeclSyntax) -> SyntaxVisitorContinueKind {
        guard !scope.isEmpty else { return .skipChildren }
        for element in node.elements {
            types[scope.joined(separator: "."), default: TypeFacts()].cases.append(
                (element.name.text.trimmingCharacters(in: CharacterSet(charactersIn: "`")), element.rawValue.map { Self.rawValue($0.value) }))
        }
        return .skipChildren
    }
    override func visitPost(_ node: ExtensionDeclSyntax) { scope.removeLast() }

    /// A raw value as the compiler reads it: integer literals in any radix, with `_` and a minus sign; string
    /// literals (raw and multi-line too) with their escapes decoded.
    static func rawValue(_ value: ExprSyntax) -> TypeFacts.RawValue {
        if let literal = value.as(StringLiteralExprSyntax.self) { return .string(literal.representedLiteralValue) }
        if let literal = value.as(IntegerLiteralExprSyntax.self) { return .integer(literal.representedLiteralValue) }
        if let negative = value.as(PrefixOperatorExprSyntax.self), negative.operator.text == "-",
            let literal = negative.expression.as(IntegerLiteralExprSyntax.self)
        {
            // -Int.min's magnitude does not fit an Int: it is read with one less, then made smaller.
            guard let magnitude = literal.representedLiteralValue else {
                let digits = literal.literal.text.filter { $0 != "_" }
                return .integer(digits == "9223372036854775808" ? Int.min : nil)
            }
            return .integer(-magnitude)
        }
        return .other
    }

    /// Functions and closures bodies hold no members of the enclosing type.
    override func visit(_ node: CodeBlockSyntax) -> SyntaxVisitorContinueKind { .skipChildren }
    override func visit(_ node: ProtocolDeclSyntax) -> SyntaxVisitorContinueKind { .skipChildren }

    override func visit(_ node: FunctionDeclSyntax) -> SyntaxVisitorContinueKind {
        let modifiers = Set(node.modifiers.map(\.name.text))
        record(
            \.methods, name: node.name.text, node: node, parameters: node.signature.parameterClause.parameters,
            effects: node.signature.effectSpecifiers, isStatic: modifiers.contains("static") || modifiers.contains("class"),
            isMutating: modifiers.contains("mutating"), isFailable: false, returnType: node.signature.returnClause?.type
        )
        return .skipChildren
    }

    override func visit(_ node: InitializerDeclSyntax) -> SyntaxVisitorContinueKind {
        record(
            \.initializers, name: "init", node: node, parameters: node.signature.parameterClause.parameters,
            effects: node.signature.effectSpecifiers, isStatic: false, isMutating: false, isFailable: node.optionalMark != nil
        )
        return .skipChildren
    }

    /// Records a method or initializer of the type being walked (top-level functions belong to no type).
    func record(
        _ list: WritableKeyPath<TypeFacts, [TypeFacts.Callable]>,
        name: String,
        node: some SyntaxProtocol,
        parameters: FunctionParameterListSyntax,
        effects: FunctionEffectSpecifiersSyntax?,
        isStatic: Bool,
        isMutating: Bool,
        isFailable: Bool,
        returnType: TypeSyntax? = nil
    ) {
        guard !scope.isEmpty else { return }
        types[scope.joined(separator: "."), default: TypeFacts()][keyPath: list].append(
            .init(
                name: name,
                file: file,
                line: line(node),
                firstLabel: parameters.first?.firstName.text,
                requiredParameters: parameters.filter { $0.defaultValue == nil }.count,
                isThrowing: effects?.throwsClause != nil,
                isAsync: effects?.asyncSpecifier != nil,
                isStatic: isStatic,
                isMutating: isMutating,
                isFailable: isFailable,
                parameterType: parameters.first.map { TypeReference($0.type) },
                returnType: returnType.map(TypeReference.init)
            ))
    }
}
