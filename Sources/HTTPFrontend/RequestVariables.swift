import Hummingbird
import NIOCore
import ServingCore

/// A scoring request's rows: one (`{"variables": {...}}`) or a batch (`{"rows": [{...}, ...]}`, docs/http-api.md "HTTP API"),
/// each the bytes of its object, or the error of a batch element that is not one.
enum ScoringBody: Sendable {
    case row([UInt8])
    case rows([Result<[UInt8], APIError>])
}

/// A scoring request's rows and whether it asks for explanations (`"explain": true`, docs/explanations.md).
struct ScoringRequest: Sendable {
    var body: ScoringBody
    var explain = false
}

/// Reads a scoring request's body: `{"variables": {...}}`, `{"rows": [...]}`, or nothing at all for
/// `variables = {}`.
///
/// The body is validated and the `variables` object (or each row's) located in one pass over the bytes, without
/// building a tree; the plugin decodes those bytes into the model's own type. That is the only decoding a request
/// pays for.
enum RequestVariables {
    static let empty: [UInt8] = Array("{}".utf8)

    static func read(_ request: Request, maxBodyBytes: Int, maxRows: Int) async -> Result<ScoringRequest, APIError> {
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
        return buffer.withUnsafeReadableBytes { bytes in parseRequest(bytes, maxRows: maxRows) }
    }

    /// The variables of one row, or the rows of a batch; an empty (or all-whitespace) body means `{}`.
    static func parse(_ bytes: UnsafeRawBufferPointer, maxRows: Int) -> Result<ScoringBody, APIError> {
        parseRequest(bytes, maxRows: maxRows).map(\.body)
    }

    /// The rows, and `explain`: `true` or `false`, anything else is 400 `invalid_explain`.
    static func parseRequest(_ bytes: UnsafeRawBufferPointer, maxRows: Int) -> Result<ScoringRequest, APIError> {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return .success(ScoringRequest(body: .row(empty))) }
        let shape = "send {\"variables\": {...}}, or {\"rows\": [{...}, ...]} for a batch"
        do {
            let (members, elements) = try JSONParser.locateObjectMembers(["variables", "rows", "explain"], in: bytes, elementsOf: 1)
            var explain = false
            if let member = members[2] {
                guard member.kind == .bool else {
                    return .failure(
                        APIError(
                            status: 400, code: "invalid_explain",
                            message: "\"explain\" must be true or false, not \(member.kind.rawValue); send \"explain\": true to have the score explained"))
                }
                explain = bytes[member.range.lowerBound] == UInt8(ascii: "t")
            }
            return parseRows(members, elements, bytes, maxRows: maxRows, shape: shape).map { ScoringRequest(body: $0, explain: explain) }
        } catch {
            switch error.reason {
            case .notAnObject:
                return .failure(APIError(status: 400, code: "invalid_body", message: "the body must be a JSON object; \(shape)"))
            default:
                return .failure(APIError(status: 400, code: "invalid_json", message: "the body is not valid JSON: \(error); \(shape)"))
            }
        }
    }

    /// A row (`variables`) or a batch (`rows`), from the members the document's pass located.
    static func parseRows(
        _ members: [JSONParser.ObjectMember?], _ elements: [JSONParser.ObjectMember], _ bytes: UnsafeRawBufferPointer, maxRows: Int, shape: String
    ) -> Result<ScoringBody, APIError> {
        switch (members[0], members[1]) {
        case (let variables?, nil):
            guard variables.kind == .object else {
                return .failure(
                    APIError(
                        status: 400, code: "invalid_variables",
                        message: "\"variables\" must be a JSON object of the model's inputs, not \(variables.kind.rawValue); \(shape)"))
            }
            return .success(.row(Array(bytes[variables.range])))
        case (nil, let rows?):
            guard rows.kind == .array else {
                return .failure(
                    APIError(status: 400, code: "invalid_rows", message: "\"rows\" must be an array of row objects, not \(rows.kind.rawValue); \(shape)"))
            }
            guard elements.count <= maxRows else {
                return .failure(
                    APIError(
                        status: 413, code: "too_many_rows",
                        message: "the batch has \(elements.count) rows, and one request scores \(maxRows) at most; split it, or raise MAX_BATCH_ROWS"))
            }
            return .success(
                .rows(
                    elements.enumerated().map { index, element in
                        guard element.kind == .object else {
                            return .failure(
                                APIError(
                                    status: 400, code: "invalid_variables",
                                    message: "row \(index) must be a JSON object of the model's inputs, not \(element.kind.rawValue)"))
                        }
                        return .success(Array(bytes[element.range]))
                    }))
        case (_?, _?):
            return .failure(APIError(status: 400, code: "invalid_body", message: "the body has both \"variables\" and \"rows\"; \(shape)"))
        case (nil, nil):
            return .failure(APIError(status: 400, code: "missing_variables", message: "the body has no \"variables\" member; \(shape)"))
        }
    }

    static func tooLarge(_ limit: Int) -> APIError {
        APIError(
            status: 413, code: "payload_too_large",
            message: "the body is larger than \(limit) bytes; send a smaller row (or fewer rows in a batch) or raise MAX_BODY_BYTES")
    }
}
