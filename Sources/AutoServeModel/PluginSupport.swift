import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the generated glue of `ServeModels.swift` calls: not for model authors.
///
/// It implements the plugin side of AutoServe's C ABI, so that the glue generated for each model stays a
/// few readable lines. Only C types cross the plugin boundary: a model instance is an opaque pointer, the
/// variables are the UTF-8 bytes of a JSON object, and every answer is a status code with a buffer the
/// server releases with `free`.
public enum _AutoServePlugin {
    /// The version of the C ABI; the server refuses a plugin whose version it does not speak.
    public static let abiVersion: UInt32 = 1

    /// The status codes `predict` returns; the buffer holds the output object or the error message.
    public enum Status: Int32 {
        case ok = 0
        case invalidVariables = 1
        case invalidInput = 2
        case modelError = 3
        /// The model cannot explain this row's score (docs/explanations.md); the buffer holds why.
        case explainUnsupported = 4
    }

    /// Thrown by a model asked for an explanation it cannot give (a tree model whose file keeps no node counts).
    public struct ExplainUnsupported: Error {
        public var message: String
    }

    final class Box<Model> {
        let model: Model
        init(_ model: Model) { self.model = model }
    }

    /// Runs the model's `init(path:)` once for a loaded version, returning the instance handle.
    public static func create<Model>(
        path: UnsafePointer<CChar>,
        error errorOut: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
        _ make: (String) throws -> Model
    ) -> UnsafeMutableRawPointer? {
        do {
            let model = try make(String(cString: path))
            return Unmanaged.passRetained(Box(model)).toOpaque()
        } catch {
            errorOut.pointee = strdup("init(path:) threw: \(describe(error))")
            return nil
        }
    }

    /// Releases an instance made by `create` once the server has drained its version.
    public static func destroy<Model>(_ instance: UnsafeMutableRawPointer, as _: Model.Type) {
        Unmanaged<Box<Model>>.fromOpaque(instance).release()
    }

    /// Decodes the variables, calls the model and encodes its output object.
    public static func predict<Model, Variables: Decodable, Output: Encodable>(
        _ instance: UnsafeMutableRawPointer,
        as _: Model.Type,
        input: UnsafePointer<UInt8>?,
        count: Int,
        output: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>,
        outputCount: UnsafeMutablePointer<Int>,
        _ body: (Model, Variables) throws -> Output
    ) -> Int32 {
        // The box, not its model: a copy of the model (generic here, so copied field by field) would retain every
        // array it holds, for each row.
        let box = Unmanaged<Box<Model>>.fromOpaque(instance).takeUnretainedValue()
        let bytes = UnsafeBufferPointer(start: input, count: input == nil ? 0 : count)
        let variables: Variables
        do {
            variables = try decode(Variables.self, from: bytes)
        } catch {
            return answer(.invalidVariables, Array(describeDecoding(error).utf8), output, outputCount)
        }
        let result: Output
        do {
            result = try body(box.model, variables)
        } catch ModelError.invalidInput(let message) {
            return answer(.invalidInput, Array(message.utf8), output, outputCount)
        } catch let error as TreeVariablesError {
            return answer(.invalidVariables, Array(error.message.utf8), output, outputCount)
        } catch {
            return answer(.modelError, Array("transform_predict threw: \(describe(error))".utf8), output, outputCount)
        }
        switch encodeObject(result) {
        case .success(let encoded): return answer(.ok, encoded, output, outputCount)
        case .failure(let message): return answer(.modelError, Array(message.text.utf8), output, outputCount)
        }
    }

    /// Decodes the variables, calls the model's `transform_predict` and `explain` (`body` returns both) and encodes the
    /// output object with the explanation as its `_explanation` member (docs/explanations.md, "The API"): `top` and
    /// `names` are model.yaml's `explain` settings.
    public static func explain<Model, Variables: Decodable, Output: Encodable>(
        _ instance: UnsafeMutableRawPointer,
        as _: Model.Type,
        input: UnsafePointer<UInt8>?,
        count: Int,
        output: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>,
        outputCount: UnsafeMutablePointer<Int>,
        top: Int,
        names: [String: String],
        _ body: (Model, Variables) throws -> (Output, _Explained)
    ) -> Int32 {
        // The box, not its model: a copy of the model (generic here, so copied field by field) would retain every
        // array it holds, for each row.
        let box = Unmanaged<Box<Model>>.fromOpaque(instance).takeUnretainedValue()
        let bytes = UnsafeBufferPointer(start: input, count: input == nil ? 0 : count)
        let variables: Variables
        do {
            variables = try decode(Variables.self, from: bytes)
        } catch {
            return answer(.invalidVariables, Array(describeDecoding(error).utf8), output, outputCount)
        }
        let result: (Output, _Explained)
        do {
            result = try body(box.model, variables)
        } catch let error as ExplainUnsupported {
            return answer(.explainUnsupported, Array(error.message.utf8), output, outputCount)
        } catch ModelError.invalidInput(let message) {
            return answer(.invalidInput, Array(message.utf8), output, outputCount)
        } catch let error as TreeVariablesError {
            return answer(.invalidVariables, Array(error.message.utf8), output, outputCount)
        } catch {
            return answer(.modelError, Array("transform_predict or explain threw: \(describe(error))".utf8), output, outputCount)
        }
        var encoded: [UInt8]
        switch encodeObject(result.0) {
        case .success(let bytes): encoded = bytes
        case .failure(let message): return answer(.modelError, Array(message.text.utf8), output, outputCount)
        }
        var explanation: [UInt8] = []
        guard result.1.json(top: top, names: names).write(into: &explanation) else {
            return answer(.modelError, Array("explain returned a number JSON cannot carry (NaN or infinity)".utf8), output, outputCount)
        }
        // The output object with one more member: `,"_explanation":{...}` before its closing brace.
        encoded.removeLast()
        if encoded.count > 1 { encoded.append(UInt8(ascii: ",")) }
        encoded.append(contentsOf: #""_explanation":"#.utf8)
        encoded.append(contentsOf: explanation)
        encoded.append(UInt8(ascii: "}"))
        return answer(.ok, encoded, output, outputCount)
    }

    struct Message: Error { var text: String }

    /// The shortcut decoder when it is sure of its answer, otherwise Foundation's value or error.
    static func decode<Variables: Decodable>(_: Variables.Type, from bytes: UnsafeBufferPointer<UInt8>) throws -> Variables {
        if let variables = VariablesDecoder.decode(Variables.self, from: bytes) { return variables }
        let data = bytes.isEmpty ? Data("{}".utf8) : Data(buffer: bytes)
        return try JSONDecoder().decode(Variables.self, from: data)
    }

    /// Encodes a model's output, which must be a JSON object (a dictionary or a struct).
    static func encodeObject<Output: Encodable>(_ result: Output) -> Result<[UInt8], Message> {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128)
        if let members = result as? [String: JSON] {
            guard JSON.writeObject(members, into: &bytes) else { return .failure(nonFinite) }
            return .success(bytes)
        }
        if let value = result as? JSON {
            guard case .object(let members) = value else { return .failure(notAnObject(Output.self)) }
            guard JSON.writeObject(members, into: &bytes) else { return .failure(nonFinite) }
            return .success(bytes)
        }
        // A struct of the common types: written as JSONEncoder writes it, without JSONEncoder (about 4 µs a row).
        if case .object(let members)? = OutputEncoder.json(of: result), JSON.writeObject(members, into: &bytes) { return .success(bytes) }
        bytes.removeAll(keepingCapacity: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            bytes = Array(try encoder.encode(result))
        } catch {
            return .failure(Message(text: "transform_predict returned an output that does not encode to JSON: \(describe(error))"))
        }
        guard bytes.first == UInt8(ascii: "{") else { return .failure(notAnObject(Output.self)) }
        return .success(bytes)
    }

    static let nonFinite = Message(text: "transform_predict returned a number JSON cannot carry (NaN or infinity)")

    static func notAnObject(_ type: Any.Type) -> Message {
        Message(text: "transform_predict returned \(type), which does not encode to a JSON object; return a dictionary or a struct")
    }

    /// Turns a decoding failure into a message naming the field, as the 400 answer shows it.
    static func describeDecoding(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "the variables could not be decoded: \(describe(error))" }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing field \"\(path(context.codingPath + [key]))\" in variables"
        case .valueNotFound(_, let context):
            return "field \"\(path(context.codingPath))\" is null; the model needs a value there"
        case .typeMismatch(_, let context):
            return "field \"\(path(context.codingPath))\" has the wrong type: \(context.debugDescription)"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "the variables are not valid JSON: \(context.debugDescription)" }
            return "field \"\(path(context.codingPath))\" is invalid: \(context.debugDescription)"
        @unknown default:
            return "the variables could not be decoded: \(error)"
        }
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        return text.isEmpty ? "variables" : text
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? ModelError, case .invalidInput(let message) = error { return message }
        if let error = error as? any LocalizedError, let description = error.errorDescription { return description }
        return String(describing: error)
    }

    static func answer(
        _ status: Status,
        _ bytes: [UInt8],
        _ output: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>,
        _ outputCount: UnsafeMutablePointer<Int>
    ) -> Int32 {
        let buffer = malloc(max(bytes.count, 1))!.assumingMemoryBound(to: UInt8.self)
        bytes.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { buffer.update(from: base, count: bytes.count) }
        }
        output.pointee = buffer
        outputCount.pointee = bytes.count
        return status.rawValue
    }
}

/// Encodes a model's output as `JSON`, the value Foundation's `JSONEncoder` writes for it, without JSONEncoder's cost
/// per call (docs/models.md, "Wide rows"). It gives up (`nil`, and JSONEncoder decides alone) on whatever JSONEncoder
/// writes otherwise than the value's own `encode(to:)` into a `JSON` would: `Float` (written from its own digits),
/// `Date`, `Data`, `URL` and `Decimal` (special cases of JSONEncoder), integers a `Double` does not hold exactly,
/// NaN and infinities (JSONEncoder's error), a super encoder, a value that encodes nothing or two kinds of container.
struct OutputEncoder: Encoder {
    struct GiveUp: Error {}

    /// A value filled in as its `encode(to:)` asks for containers: one value, an object's members or an array's
    /// elements. Members and elements of the common types are stored as they will be written; a nested container
    /// is a node of its own, turned into a value at the end.
    final class Node {
        var value: JSON?
        var members: [String: JSON]?
        var nestedMembers: [(key: String, node: Node)] = []
        var elements: [JSON]?
        var nestedElements: [(index: Int, node: Node)] = []
        var failed = false

        var json: JSON? {
            guard !failed else { return nil }
            switch (value, members, elements) {
            case (let value?, nil, nil): return value
            case (nil, var members?, nil):
                for (key, node) in nestedMembers {
                    guard let value = node.json else { return nil }
                    members[key] = value
                }
                return .object(members)
            case (nil, nil, var elements?):
                for (index, node) in nestedElements {
                    guard let value = node.json else { return nil }
                    elements[index] = value
                }
                return .array(elements)
            default: return nil
            }
        }

        func set(_ key: String, _ value: JSON) {
            members?[key] = value
            nestedMembers.removeAll { $0.key == key }
        }

        func nested(_ key: String) -> Node {
            let node = Node()
            members?[key] = .null
            nestedMembers.removeAll { $0.key == key }
            nestedMembers.append((key, node))
            return node
        }

        func append(_ value: JSON) { elements?.append(value) }

        func nestedElement() -> Node {
            let node = Node()
            nestedElements.append((elements?.count ?? 0, node))
            elements?.append(.null)
            return node
        }
    }

    let node: Node
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    static func json<Value: Encodable>(of value: Value) -> JSON? {
        let node = Node()
        do {
            try value.encode(to: OutputEncoder(node: node, codingPath: []))
        } catch {
            return nil
        }
        return node.json
    }

    /// Encodes `value` into `node` (a fresh one): a value of the common types as it is, any other by its `encode(to:)`.
    static func encode<Value: Encodable>(_ value: Value, into node: Node, path: @autoclosure () -> [any CodingKey]) throws {
        if let json = try leaf(value) {
            node.value = json
        } else {
            try value.encode(to: OutputEncoder(node: node, codingPath: path()))
        }
    }

    /// The JSON of a value of the common types (checked by type, not by cast: a cast to a protocol is slow), `nil` for
    /// any other type; throws `GiveUp` for what JSONEncoder writes its own way.
    static func leaf<Value: Encodable>(_ value: Value) throws -> JSON? {
        let type = Value.self
        if type == Double.self {
            let number = value as! Double
            guard number.isFinite else { throw GiveUp() }
            return .number(number)
        }
        if type == String.self { return .string(value as! String) }
        if type == Int.self { return try exact(value as! Int) }
        if type == Bool.self { return .bool(value as! Bool) }
        if type == Int32.self { return try exact(value as! Int32) }
        if type == Int64.self { return try exact(value as! Int64) }
        if type == Int16.self { return try exact(value as! Int16) }
        if type == Int8.self { return try exact(value as! Int8) }
        if type == UInt.self { return try exact(value as! UInt) }
        if type == UInt64.self { return try exact(value as! UInt64) }
        if type == UInt32.self { return try exact(value as! UInt32) }
        if type == UInt16.self { return try exact(value as! UInt16) }
        if type == UInt8.self { return try exact(value as! UInt8) }
        if type == Float.self || type == Date.self || type == Data.self || type == URL.self || type == Decimal.self { throw GiveUp() }
        return nil
    }

    /// An integer a `Double` holds exactly: up to 2^53 in magnitude (JSONEncoder writes every digit of a larger one).
    static func exact<Integer: BinaryInteger>(_ integer: Integer) throws -> JSON {
        guard let exact = Int64(exactly: integer), exact.magnitude <= 1 << 53 else { throw GiveUp() }
        return .number(Double(exact))
    }

    func container<Key: CodingKey>(keyedBy _: Key.Type) -> KeyedEncodingContainer<Key> {
        if node.members == nil { node.members = [:] }
        return KeyedEncodingContainer(Keyed(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if node.elements == nil { node.elements = [] }
        return Unkeyed(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { Single(node: node, codingPath: codingPath) }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let node: Node
        let codingPath: [any CodingKey]

        mutating func encodeNil(forKey key: Key) throws { node.set(key.stringValue, .null) }

        mutating func encode<Value: Encodable>(_ value: Value, forKey key: Key) throws {
            if let json = try OutputEncoder.leaf(value) { return node.set(key.stringValue, json) }
            try value.encode(to: OutputEncoder(node: node.nested(key.stringValue), codingPath: codingPath + [key]))
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy _: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            let child = node.nested(key.stringValue)
            child.members = [:]
            return KeyedEncodingContainer(Keyed<NestedKey>(node: child, codingPath: codingPath + [key]))
        }

        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            let child = node.nested(key.stringValue)
            child.elements = []
            return Unkeyed(node: child, codingPath: codingPath + [key])
        }

        mutating func superEncoder() -> any Encoder {
            node.failed = true
            return OutputEncoder(node: Node(), codingPath: codingPath)
        }

        mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder() }
    }

    struct Unkeyed: UnkeyedEncodingContainer {
        let node: Node
        let codingPath: [any CodingKey]
        var count: Int { node.elements?.count ?? 0 }

        mutating func encodeNil() throws { node.append(.null) }

        mutating func encode<Value: Encodable>(_ value: Value) throws {
            if let json = try OutputEncoder.leaf(value) { return node.append(json) }
            try value.encode(to: OutputEncoder(node: node.nestedElement(), codingPath: codingPath))
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy _: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            let child = node.nestedElement()
            child.members = [:]
            return KeyedEncodingContainer(Keyed<NestedKey>(node: child, codingPath: codingPath))
        }

        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            let child = node.nestedElement()
            child.elements = []
            return Unkeyed(node: child, codingPath: codingPath)
        }

        mutating func superEncoder() -> any Encoder {
            node.failed = true
            return OutputEncoder(node: Node(), codingPath: codingPath)
        }
    }

    struct Single: SingleValueEncodingContainer {
        let node: Node
        let codingPath: [any CodingKey]

        mutating func encodeNil() throws { node.value = .null }

        mutating func encode<Value: Encodable>(_ value: Value) throws {
            let child = Node()
            try OutputEncoder.encode(value, into: child, path: codingPath)
            guard let json = child.json else {
                node.failed = true
                return
            }
            node.value = json
        }
    }
}
