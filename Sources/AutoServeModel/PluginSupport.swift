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
        let model = Unmanaged<Box<Model>>.fromOpaque(instance).takeUnretainedValue().model
        let bytes = UnsafeBufferPointer(start: input, count: input == nil ? 0 : count)
        let variables: Variables
        do {
            variables = try decode(Variables.self, from: bytes)
        } catch {
            return answer(.invalidVariables, Array(describeDecoding(error).utf8), output, outputCount)
        }
        let result: Output
        do {
            result = try body(model, variables)
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
