import AutoServeModel
public import Hummingbird
public import ServingCore

/// An error answered to a client: `{"error": {"status": …, "code": "…", "message": "…"}}`.
///
/// Every error body of the server is rendered here, so they all have the shape docs/http-api.md's "HTTP API" promises; the
/// message says what went wrong and how to fix it.
public struct APIError: Error, Sendable, HTTPResponseError {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var headers: HTTPFields

    public init(status: Int, code: String, message: String, headers: HTTPFields = [:]) {
        self.status = HTTPResponse.Status(code: status)
        self.code = code
        self.message = message
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        response()
    }

    public func response() -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bodyBytes)))
    }

    /// The JSON object under `"error"`, also used inside `/all`'s `_errors` and a batch's `_error`.
    public var errorObject: [UInt8] {
        var bytes: [UInt8] = Array(#"{"status":"#.utf8)
        bytes.append(contentsOf: String(status.code).utf8)
        bytes.append(contentsOf: #","code":"#.utf8)
        JSON.writeString(code, into: &bytes)
        bytes.append(contentsOf: #","message":"#.utf8)
        JSON.writeString(message, into: &bytes)
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    var bodyBytes: [UInt8] { Array(#"{"error":"#.utf8) + errorObject + [UInt8(ascii: "}")] }

    static func methodNotAllowed(_ method: HTTPRequest.Method, path: String, allowed: [HTTPRequest.Method]) -> APIError {
        let list = allowed.map(\.rawValue).joined(separator: ", ")
        return APIError(status: 405, code: "method_not_allowed", message: "\(method.rawValue) is not allowed on \(path); use \(list)", headers: [.allow: list])
    }

    public init(_ failure: PredictionFailure, model: String) {
        self.init(status: failure.status, code: failure.code, message: "\(model): \(failure.message)")
    }
}
