import AutoServeModel
import Foundation
import HTTPTypes
import Hummingbird
import ModelManager
import NIOCore
import ServingCore

/// The Open Inference Protocol v2 over REST (docs/http-api.md, "Open Inference Protocol v2"), beside the native routes, for the
/// clients of KServe, Triton and MLServer: health, metadata, and `infer` with the tabular convention MLServer uses for
/// rows: one input tensor per variable, shape `[N]`, and one output tensor per output key, shape `[N]`.
///
/// Rows are scored as a batch on the native route is (`Scoring.scoreBatch`), so metrics, the inference log and the
/// version a request holds are the same; only the bodies differ, and errors are `{"error": "<string>"}`.
struct InferenceProtocolV2: Sendable {
    let endpoints: Endpoints
    /// What `GET /v2` names as the server's version: the protocol's, as this server speaks it.
    static let serverVersion = "2"

    /// The protocol's error body, `{"error": "<message>"}`.
    static func errorBody(_ message: String) -> [UInt8] {
        var bytes: [UInt8] = []
        _ = JSON.writeObject(["error": .string(message)], into: &bytes)
        return bytes
    }

    static func error(_ status: Int, _ message: String) -> Response {
        Response(
            status: HTTPResponse.Status(code: status), headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: errorBody(message))))
    }

    static func error(_ failure: Failure) -> Response { error(failure.status, failure.message) }

    static func ok(_ value: JSONValue) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: value.jsonBytes)))
    }

    /// The answer of each of the protocol's routes in `RouteTable`.
    func handler(_ route: RouteTable.Handler) -> @Sendable (Request, BasicRequestContext) async -> Response {
        let v2 = self
        switch route {
        case .v2Live: return { _, _ in Self.ok(["live": true]) }
        case .v2Ready: return { _, _ in v2.serverReady() }
        case .v2Server: return { _, _ in Self.ok(["name": "autoserve", "version": .string(Self.serverVersion), "extensions": []]) }
        case .v2Model:
            return { _, context in
                switch v2.serving(context) {
                case .success(let version): Self.ok(v2.metadata(version))
                case .failure(let failure): Self.error(failure)
                }
            }
        case .v2ModelReady:
            return { _, context in
                switch v2.serving(context) {
                case .success(let version): Self.ok(["name": .string(version.name.rawValue), "ready": true])
                case .failure(let failure): Self.error(failure)
                }
            }
        case .v2Infer: return { request, context in await v2.infer(request, context) }
        default: preconditionFailure("\(route) is not a route of the Open Inference Protocol")
        }
    }

    func serverReady() -> Response {
        let readiness = endpoints.manager.snapshot().readiness
        guard readiness.ready, !endpoints.connections.isDraining else {
            return Self.error(400, endpoints.connections.isDraining ? "the server is stopping" : readiness.reason)
        }
        return Self.ok(["ready": true])
    }

    /// The version serving the model the path names (and the version it names, which must be that one): 404 for no
    /// such model or version, 400 (the protocol's "not ready") when the model has no version ready.
    func serving(_ context: BasicRequestContext) -> Result<ServingVersion, Failure> {
        let name = context.parameters.get("model") ?? ""
        let snapshot = endpoints.manager.snapshot()
        guard let status = snapshot.models[name] else {
            let available = snapshot.servingVersions.map(\.name.rawValue).joined(separator: ", ")
            return .failure(
                Failure(status: 404, message: "no model named '\(name)'; \(available.isEmpty ? "none is ready yet" : "the available ones are \(available)")"))
        }
        if let asked = context.parameters.get("version") {
            guard let serving = status.serving, Self.names(asked, serving.version) else {
                return .failure(
                    Failure(
                        status: 404,
                        message: "\(name) has no version '\(asked)' serving\(status.serving.map { "; the version serving is \($0.version)" } ?? "")"))
            }
        }
        guard let serving = status.serving else {
            return .failure(Failure(status: 400, message: "\(name) is not ready: \(Scoring.notReady(status).message)"))
        }
        return .success(serving)
    }

    /// Whether the path's version segment names `version`: in full, or by the 12 characters the index shows.
    static func names(_ asked: String, _ version: String) -> Bool {
        asked == version || (asked.count == 12 && version.hasPrefix(asked))
    }

    /// Model metadata: inputs from the variables' schema, outputs from the output's when it lists them.
    func metadata(_ version: ServingVersion) -> JSONValue {
        func tensors(_ schema: JSONValue) -> JSONValue {
            guard case .object(let properties)? = schema["properties"] else { return [] }
            return .array(
                properties.keys.sorted().map { name in
                    ["name": .string(name), "datatype": .string(Self.datatype(of: Self.resolve(properties[name]!, in: version.schemas))), "shape": [-1]]
                })
        }
        return [
            "name": .string(version.name.rawValue), "versions": [.string(version.version)], "platform": "autoserve",
            "inputs": tensors(version.schemas.variables), "outputs": tensors(version.schemas.output),
        ]
    }

    /// The definition a `{"$ref": "#/components/schemas/<name>"}` names, or the schema itself.
    static func resolve(_ schema: JSONValue, in schemas: ModelSchemas) -> JSONValue {
        guard case .string(let reference)? = schema["$ref"], reference.hasPrefix("#/components/schemas/") else { return schema }
        return schemas.definitions[String(reference.dropFirst("#/components/schemas/".count))] ?? schema
    }

    /// The tensor datatype of a JSON Schema: numbers FP64, integers INT64, booleans BOOL, anything else BYTES.
    static func datatype(of schema: JSONValue) -> String {
        let types: [String]
        switch schema["type"] {
        case .string(let type)?: types = [type]
        case .array(let list)?: types = list.compactMap(\.string).filter { $0 != "null" }
        default: types = []
        }
        if types == ["integer"] { return "INT64" }
        if types == ["boolean"] { return "BOOL" }
        if !types.isEmpty, types.allSatisfy({ ["number", "integer", "boolean"].contains($0) }) { return "FP64" }
        return "BYTES"
    }

    // MARK: - infer

    func infer(_ request: Request, _ context: BasicRequestContext) async -> Response {
        if request.headers[HTTPField.Name("Inference-Header-Content-Length")!] != nil {
            return Self.error(400, "the binary tensor extension is not supported; send JSON tensors (tritonclient: binary_data=False)")
        }
        // The model and version are checked first so that their errors have the protocol's body.
        let serving: ServingVersion
        switch self.serving(context) {
        case .success(let version): serving = version
        case .failure(let failure): return Self.error(failure)
        }
        let maxBodyBytes = endpoints.configuration.maxBodyBytes
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBodyBytes {
            return Self.error(413, "the body is larger than \(maxBodyBytes) bytes; send fewer rows or raise MAX_BODY_BYTES")
        }
        let body: JSONValue
        do {
            let buffer = try await request.body.collect(upTo: maxBodyBytes)
            body = try JSONParser.parse(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            return Self.error(413, "the body is larger than \(maxBodyBytes) bytes; send fewer rows or raise MAX_BODY_BYTES")
        } catch {
            return Self.error(400, "the body is not JSON: \(error)")
        }
        let rows: [[String: JSONValue]]
        switch Self.rows(body, maxRows: endpoints.configuration.maxBatchRows) {
        case .success(let found): rows = found
        case .failure(let failure): return Self.error(failure)
        }
        let requested: [String]? = body["outputs"]?.array.map { outputs in outputs.compactMap { $0["name"]?.string } }
        let id = body["id"]?.string
        let name = serving.name.rawValue
        let scoring = endpoints.scoring
        let encoded: [Result<[UInt8], APIError>] = rows.map { row in
            var bytes: [UInt8] = []
            _ = JSON.writeObject(row, into: &bytes)
            return .success(bytes)
        }
        let answer = await withUnsafeContinuation { (continuation: UnsafeContinuation<Scoring.Answer, Never>) in
            scoring.scoreBatch(
                name, encoded, requestID: RequestID.of(request.headers[.requestID]),
                render: { outcomes, version in Self.render(outcomes, model: name, version: version.version, id: id, requested: requested) },
                completion: { continuation.resume(returning: $0) })
        }
        var headers = answer.headers
        headers[.contentType] = "application/json"
        var bytes = answer.body
        if answer.status != 200, let message = (try? JSONParser.parse(answer.body))?["error"]?["message"]?.string {
            // A native error (the version went away meanwhile): the protocol's body.
            bytes = Self.errorBody(message)
        }
        return Response(status: HTTPResponse.Status(code: answer.status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    struct Failure: Error {
        var status: Int
        var message: String
    }

    /// The rows of an infer request: input tensor `i` holds variable `name` of every row, shape `[N]` or `[N, 1]`,
    /// its data flat (or one list per row, as `[N, 1]` may come); `null` is a missing value.
    static func rows(_ body: JSONValue, maxRows: Int) -> Result<[[String: JSONValue]], Failure> {
        guard case .object = body else { return .failure(Failure(status: 400, message: "the body must be a JSON object with inputs")) }
        guard case .array(let inputs)? = body["inputs"], !inputs.isEmpty else {
            return .failure(
                Failure(status: 400, message: "the request has no inputs; send one tensor per variable: {\"name\", \"shape\": [N], \"datatype\", \"data\"}"))
        }
        var rows: [[String: JSONValue]]?
        var names = Set<String>()
        for (position, input) in inputs.enumerated() {
            guard let name = input["name"]?.string else { return .failure(Failure(status: 400, message: "input \(position) has no name")) }
            guard names.insert(name).inserted else {
                return .failure(Failure(status: 400, message: "input '\(name)' appears twice; send one tensor per variable"))
            }
            guard let datatype = input["datatype"]?.string, let kind = TensorKind(datatype) else {
                return .failure(
                    Failure(status: 400, message: "input '\(name)': datatype must be BOOL, BYTES, FP16/32/64, INT8/16/32/64 or UINT8/16/32/64"))
            }
            guard case .array(let shape)? = input["shape"], let sizes = Optional(shape.compactMap(\.int)), sizes.count == shape.count,
                sizes.count == 1 || (sizes.count == 2 && sizes[1] == 1), sizes[0] >= 0
            else {
                return .failure(Failure(status: 400, message: "input '\(name)': shape must be [N] or [N, 1], one value per row"))
            }
            guard case .array(var data)? = input["data"] else {
                return .failure(Failure(status: 400, message: "input '\(name)': data must be a list of values"))
            }
            if data.allSatisfy({ if case .array(let inner) = $0 { inner.count == 1 } else { false } }) { data = data.map { $0[0] ?? .null } }
            guard data.count == sizes[0] else {
                return .failure(Failure(status: 400, message: "input '\(name)': shape says \(sizes[0]) rows and data holds \(data.count) values"))
            }
            guard data.count <= maxRows else {
                return .failure(
                    Failure(
                        status: 413, message: "the request has \(data.count) rows, and one request scores \(maxRows) at most; split it, or raise MAX_BATCH_ROWS"
                    ))
            }
            if rows == nil { rows = Array(repeating: [:], count: data.count) }
            guard rows!.count == data.count else {
                return .failure(
                    Failure(status: 400, message: "input '\(name)' has \(data.count) rows and the inputs before it \(rows!.count); send N values in each"))
            }
            for (row, value) in data.enumerated() {
                guard let converted = kind.value(value) else {
                    return .failure(
                        Failure(
                            status: 400, message: "input '\(name)', row \(row + 1): \(value.jsonText) is not \(datatype)\(kind.range.map { " (\($0))" } ?? "")")
                    )
                }
                rows![row][name] = converted
            }
        }
        return .success(rows ?? [])
    }

    /// What a tensor's datatype lets its values be: numbers within the float's range, whole numbers within the
    /// integer's, booleans (or 0 and 1), strings.
    enum TensorKind {
        /// A float of this largest magnitude.
        case number(largest: Double)
        /// A whole number from `lowest` up to, not including, `past`.
        case integer(lowest: Double, past: Double)
        case bool
        case bytes

        init?(_ datatype: String) {
            switch datatype {
            case "FP16": self = .number(largest: 65504)
            case "FP32": self = .number(largest: Double(Float.greatestFiniteMagnitude))
            case "FP64": self = .number(largest: .greatestFiniteMagnitude)
            case "INT8", "INT16", "INT32", "INT64":
                let bits = Double(Int(datatype.dropFirst(3))!)
                self = .integer(lowest: -pow(2, bits - 1), past: pow(2, bits - 1))
            case "UINT8", "UINT16", "UINT32", "UINT64": self = .integer(lowest: 0, past: pow(2, Double(Int(datatype.dropFirst(4))!)))
            case "BOOL": self = .bool
            case "BYTES": self = .bytes
            default: return nil
            }
        }

        /// The values the datatype holds, for messages.
        var range: String? {
            switch self {
            case .number(let largest): largest < .greatestFiniteMagnitude ? "from \(-largest) to \(largest)" : nil
            case .integer(let lowest, let past): String(format: "a whole number from %.0f to %.0f", lowest, past - 1)
            case .bool, .bytes: nil
            }
        }

        /// The variable's JSON value, or `nil` when the value does not fit the datatype.
        func value(_ value: JSONValue) -> JSONValue? {
            // `JSON` is nil-literal expressible: `.none` spells the refusal, not `nil` (which would be JSON's null).
            switch (self, value) {
            case (_, .null): return .some(.null)
            case (.number(let largest), .number(let number)): return number.magnitude <= largest ? .some(value) : .none
            case (.bool, .bool), (.bytes, .string): return .some(value)
            case (.integer(let lowest, let past), .number(let number)):
                return number.rounded(.towardZero) == number && number >= lowest && number < past ? .some(value) : .none
            case (.bool, .number(let number)) where number == 0 || number == 1: return .some(.bool(number == 1))
            default: return .none
            }
        }
    }

    /// The answer to an infer request: one output tensor per output key, in the rows' order; numbers FP64 (INT64 when
    /// every one is whole and the schema says integer), booleans BOOL, strings BYTES, anything else its JSON text as
    /// BYTES. A row that failed fails the request (the protocol has no per-row error), with the first failure.
    static func render(_ outcomes: [Result<[UInt8], APIError>], model: String, version: String, id: String?, requested: [String]?) -> Scoring.Answer {
        var outputs: [[String: JSONValue]] = []
        for (row, outcome) in outcomes.enumerated() {
            switch outcome {
            case .success(let bytes):
                guard case .object(let output)? = try? JSONParser.parse(bytes) else {
                    return errorAnswer(500, "row \(row + 1): \(model) answered something that is not a JSON object")
                }
                outputs.append(output)
            case .failure(let failure):
                return errorAnswer(Int(failure.status.code), outcomes.count == 1 ? failure.message : "row \(row + 1): \(failure.message)")
            }
        }
        var names = Set<String>()
        for output in outputs { names.formUnion(output.keys) }
        if let requested {
            if let missing = requested.first(where: { !names.contains($0) }), !outputs.isEmpty {
                return errorAnswer(400, "\(model) has no output '\(missing)'; its outputs are \(names.sorted().joined(separator: ", "))")
            }
            names = Set(requested)
        }
        var tensors: [JSONValue] = []
        for name in names.sorted() {
            let values = outputs.map { $0[name] ?? .null }
            let datatype: String
            var data = values
            if values.allSatisfy({ if case .number = $0 { true } else { $0 == .null } }) {
                datatype = "FP64"
            } else if values.allSatisfy({ if case .bool = $0 { true } else { $0 == .null } }) {
                datatype = "BOOL"
            } else {
                datatype = "BYTES"
                data = values.map { if case .string = $0 { $0 } else { .string($0.jsonText) } }
            }
            tensors.append(["name": .string(name), "datatype": .string(datatype), "shape": [.number(Double(outputs.count))], "data": .array(data)])
        }
        var body: [String: JSONValue] = ["model_name": .string(model), "model_version": .string(version), "outputs": .array(tensors)]
        if let id { body["id"] = .string(id) }
        return Scoring.Answer(status: 200, body: JSONValue.object(body).jsonBytes)
    }

    static func errorAnswer(_ status: Int, _ message: String) -> Scoring.Answer {
        Scoring.Answer(status: status, body: errorBody(message))
    }
}
