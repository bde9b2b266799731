import Hummingbird
import NIOCore
import ServingCore

/// Reads a scoring request's body: `{"variables": {...}}`, or nothing at all for `variables = {}`.
///
/// The body is validated and the `variables` object located in one pass over the bytes, without building
/// a tree; the plugin decodes those bytes into the model's own type. That is the only decoding a request
/// pays for.
enum RequestVariables {
    static let empty: [UInt8] = Array("{}".utf8)

    static func read(_ request: Request, maxBodyBytes: Int) async -> Result<[UInt8], APIError> {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBodyBytes {
            return .failure(tooLarge(maxBodyBytes))
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxBodyBytes)
        } catch is NIOTooManyBytesError {
            return .failure(tooLarge(maxBodyBytes))
        } catch {
            return .failure(APIError(status: 400, code: "unreadable_body", message: "the request body could not be read: \(error)"))
        }
        return buffer.withUnsafeReadableBytes { bytes in parse(bytes) }
    }

    /// Finds the variables object in a body; an empty (or all-whitespace) body means `{}`.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<[UInt8], APIError> {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return .success(empty) }
        do {
            let member = try JSONParser.locateObjectMember("variables", in: bytes)
            guard member.kind == .object else {
                return .failure(
                    APIError(
                        status: 400, code: "invalid_variables",
                        message: "\"variables\" must be a JSON object of the model's inputs, not \(member.kind.rawValue); send {\"variables\": {...}}"
                    ))
            }
            return .success(Array(bytes[member.range]))
        } catch {
            switch error.reason {
            case .notAnObject:
                return .failure(APIError(status: 400, code: "invalid_body", message: "the body must be a JSON object like {\"variables\": {...}}"))
            case .missingMember:
                return .failure(APIError(status: 400, code: "missing_variables", message: "the body has no \"variables\" member; send {\"variables\": {...}}"))
            default:
                return .failure(APIError(status: 400, code: "invalid_json", message: "the body is not valid JSON: \(error); send {\"variables\": {...}}"))
            }
        }
    }

    static func tooLarge(_ limit: Int) -> APIError {
        APIError(status: 413, code: "payload_too_large", message: "the body is larger than \(limit) bytes; send a smaller row or raise MAX_BODY_BYTES")
    }
}
