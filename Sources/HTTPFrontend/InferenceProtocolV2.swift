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
        Self.serving(context.parameters.get("model") ?? "", version: context.parameters.get("version"), in: endpoints.manager.snapshot())
    }

    static func serving(_ name: String, version asked: String?, in snapshot: RegistrySnapshot) -> Result<ServingVersion, Failure> {
        guard let status = snapshot.models[name] else {
            let available = snapshot.servingVersions.map(\.name.rawValue).joined(separator: ", ")
            return .failure(
                Failure(status: 404, message: "no model named '\(name)'; \(available.isEmpty ? "none is ready yet" : "the available ones are \(available)")"))
        }
        if let asked {
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

    /// An infer request that came through Hummingbird (the `ScoringChannelHandler` answers most of them before they
    /// get here): binary tensors are refused, the body is read, then scored as there.
    func infer(_ request: Request, _ context: BasicRequestContext) async -> Response {
        if request.headers[.inferenceHeaderContentLength] != nil {
            return Self.error(400, "the binary tensor extension is not supported; send JSON tensors (tritonclient: binary_data=False)")
        }
        let maxBodyBytes = endpoints.configuration.maxBodyBytes
        var body: ByteBuffer?
        if request.headers[.contentLength].flatMap(Int.init) ?? 0 <= maxBodyBytes {
            do {
                body = try await request.body.collect(upTo: maxBodyBytes)
            } catch is NIOTooManyBytesError {
                body = nil
            } catch {
                return Self.error(400, "the body could not be read: \(error)")
            }
        }
        let scoring = endpoints.scoring
        let model = context.parameters.get("model") ?? ""
        let version = context.parameters.get("version")
        let requestID = RequestID.of(request.headers[.requestID])
        let answer = await withUnsafeContinuation { (continuation: UnsafeContinuation<Scoring.Answer, Never>) in
            scoring.infer(model, version: version, body: body, requestID: requestID) { continuation.resume(returning: $0) }
        }
        var headers = answer.headers
        headers[.contentType] = "application/json"
        return Response(status: HTTPResponse.Status(code: answer.status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
    }

    struct Failure: Error {
        var status: Int
        var message: String
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
    }

    /// The answer to an infer request: one output tensor per output key (sorted), in the rows' order; numbers FP64,
    /// booleans BOOL, strings BYTES, anything else its JSON text as BYTES (`"null"` there for a row without the output,
    /// `null` in the others). A row that failed fails the request (the protocol has no per-row error), with the first
    /// failure.
    ///
    /// Written from the outputs' bytes (each validated once, its members located, their values copied as the worker
    /// wrote them): no tree of each output, no number parsed and printed again (docs/models.md, "Wide rows").
    static func render(_ outcomes: [Result<[UInt8], APIError>], model: String, version: String, id: String?, requested: [String]?) -> Scoring.Answer {
        var outputs: [Output] = []
        outputs.reserveCapacity(outcomes.count)
        for (row, outcome) in outcomes.enumerated() {
            switch outcome {
            case .success(let bytes):
                guard let output = Output(bytes) else {
                    return errorAnswer(500, "row \(row + 1): \(model) answered something that is not a JSON object")
                }
                outputs.append(output)
            case .failure(let failure):
                return errorAnswer(Int(failure.status.code), outcomes.count == 1 ? failure.message : "row \(row + 1): \(failure.message)")
            }
        }
        // Every row's output names, sorted (a single row's are already: no set of them).
        var known: [String] { outputs.count == 1 ? outputs[0].members.map(\.name) : Set(outputs.flatMap { $0.members.map(\.name) }).sorted() }
        if let requested, let missing = requested.first(where: { name in !outputs.contains { $0.member(name) != nil } }), !outputs.isEmpty {
            return errorAnswer(400, "\(model) has no output '\(missing)'; its outputs are \(known.joined(separator: ", "))")
        }
        let names = requested.map { Set($0).sorted() } ?? known
        // Keys in sorted order, as every JSON body of this server has them.
        var body: [UInt8] = []
        body.reserveCapacity(outputs.reduce(128) { $0 + $1.bytes.count } + names.count * 64)
        body.append(UInt8(ascii: "{"))
        if let id {
            body.append(contentsOf: #""id":"#.utf8)
            JSON.writeString(id, into: &body)
            body.append(UInt8(ascii: ","))
        }
        body.append(contentsOf: #""model_name":"#.utf8)
        JSON.writeString(model, into: &body)
        body.append(contentsOf: #","model_version":"#.utf8)
        JSON.writeString(version, into: &body)
        body.append(contentsOf: #","outputs":["#.utf8)
        for (position, name) in names.enumerated() {
            if position > 0 { body.append(UInt8(ascii: ",")) }
            let values = outputs.map { ($0, $0.member(name)) }
            // FP64 when every value is a number (or null), BOOL when every one is a boolean (or null), else BYTES.
            var (numbers, booleans) = (true, true)
            for (_, value) in values {
                switch value?.kind {
                case nil, .null: break
                case .number: booleans = false
                case .bool: numbers = false
                default: (numbers, booleans) = (false, false)
                }
            }
            let datatype = numbers ? "FP64" : booleans ? "BOOL" : "BYTES"
            body.append(contentsOf: #"{"data":["#.utf8)
            for (row, (output, value)) in values.enumerated() {
                if row > 0 { body.append(UInt8(ascii: ",")) }
                if datatype != "BYTES" || value?.kind == .string {
                    if let value { body.append(contentsOf: output.bytes[value.range]) } else { body.append(contentsOf: "null".utf8) }
                } else if let value, value.kind != .null {
                    JSON.writeString(output.bytes.withUnsafeBytes { JSONParser.value(at: value.range, in: $0).jsonText }, into: &body)
                } else {
                    body.append(contentsOf: #""null""#.utf8)
                }
            }
            body.append(contentsOf: #"],"datatype":""#.utf8)
            body.append(contentsOf: datatype.utf8)
            body.append(contentsOf: #"","name":"#.utf8)
            JSON.writeString(name, into: &body)
            body.append(contentsOf: #","shape":["#.utf8)
            body.append(contentsOf: String(outputs.count).utf8)
            body.append(contentsOf: "]}".utf8)
        }
        body.append(contentsOf: "]}".utf8)
        return Scoring.Answer(status: 200, body: body)
    }

    /// One row's output: its bytes, validated, and where each member's value lies in them, sorted by name (the first of
    /// a repeated key, as everywhere in this server): a row's few outputs are found by a binary search, without a
    /// dictionary and the hash of each name.
    struct Output {
        let bytes: [UInt8]
        var members: [(name: String, value: JSONParser.ObjectMember)] = []

        /// `nil` when `bytes` are not one JSON object.
        init?(_ bytes: [UInt8]) {
            self.bytes = bytes
            var found: [(name: String, order: Int, value: JSONParser.ObjectMember)] = []
            let valid = bytes.withUnsafeBytes { raw -> Bool in
                guard (try? JSONParser.locateObjectMembers([], in: raw)) != nil,
                    let start = raw.firstIndex(where: { $0 == UInt8(ascii: "{") })
                else { return false }
                JSONParser.forEachMember(ofObjectAt: start..<raw.count, in: raw) { key, value in
                    found.append((JSONParser.string(key, in: raw), found.count, value))
                }
                return true
            }
            guard valid else { return nil }
            // By name, then in the order they came: the first of each name is the one kept.
            found.sort { $0.name != $1.name ? $0.name < $1.name : $0.order < $1.order }
            members.reserveCapacity(found.count)
            for member in found where members.last?.name != member.name { members.append((member.name, member.value)) }
        }

        /// The value of the member `name`, if the output has one.
        func member(_ name: String) -> JSONParser.ObjectMember? {
            var (low, high) = (0, members.count)
            while low < high {
                let middle = (low + high) / 2
                if members[middle].name < name { low = middle + 1 } else { high = middle }
            }
            return low < members.count && members[low].name == name ? members[low].value : nil
        }
    }

    static func errorAnswer(_ status: Int, _ message: String) -> Scoring.Answer {
        Scoring.Answer(status: status, body: errorBody(message))
    }
}

extension Scoring {
    /// Scores an infer request of the Open Inference Protocol with the model (and version) its path names: its rows
    /// as a batch on the native route (`scoreBatch`), the answer as output tensors, errors as `{"error": "<string>"}`.
    /// `body` is `nil` when it was over `maxBodyBytes`.
    func infer(_ model: String, version: String?, body: ByteBuffer?, requestID: String, completion: @escaping @Sendable (Answer) -> Void) {
        func fail(_ status: Int, _ message: String) {
            completion(Answer(status: status, headers: [.requestID: requestID], body: InferenceProtocolV2.errorBody(message)))
        }
        // The model and version are checked first so that their errors come before the body's.
        if case .failure(let failure) = InferenceProtocolV2.serving(model, version: version, in: manager.snapshot()) {
            return fail(failure.status, failure.message)
        }
        guard let body else { return fail(413, "the body is larger than \(maxBodyBytes) bytes; send fewer rows or raise MAX_BODY_BYTES") }
        let request: InferenceRequest
        switch body.withUnsafeReadableBytes({ InferenceRequest.parse($0, maxRows: configuration.maxBatchRows) }) {
        case .success(let parsed): request = parsed
        case .failure(let failure): return fail(failure.status, failure.message)
        }
        let id = request.id
        let requested = request.requested
        if request.rows.count == 1 {
            // One row (the usual request): the native route's single-row path, without a batch's window.
            scoreOne(model, .success(request.rows[0]), requestID: requestID) { answer in
                guard answer.status == 200 else { return completion(Self.protocolError(answer)) }
                var rendered = InferenceProtocolV2.render(
                    [.success(answer.body)], model: model, version: answer.headers[.modelVersion] ?? "", id: id, requested: requested)
                rendered.headers = answer.headers
                completion(rendered)
            }
            return
        }
        let render: @Sendable ([Result<[UInt8], APIError>], ServingVersion) -> Answer = { outcomes, version in
            InferenceProtocolV2.render(outcomes, model: model, version: version.version, id: id, requested: requested)
        }
        scoreBatch(model, request.rows.map { .success($0) }, requestID: requestID, render: render) { answer in
            completion(Self.protocolError(answer))
        }
    }

    /// A native error answer (the version went away meanwhile, the model failed the row) with the protocol's body;
    /// any other answer as it is.
    static func protocolError(_ answer: Answer) -> Answer {
        var answer = answer
        if answer.status != 200, let message = (try? JSONParser.parse(answer.body))?["error"]?["message"]?.string {
            answer.body = InferenceProtocolV2.errorBody(message)
        }
        return answer
    }
}

extension HTTPField.Name {
    /// The binary tensor extension's header, which this server refuses.
    static let inferenceHeaderContentLength = HTTPField.Name("Inference-Header-Content-Length")!
}
