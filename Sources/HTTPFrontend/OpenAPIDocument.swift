import Crypto
import Foundation
public import ServingCore

/// The OpenAPI 3.1 document of a server (docs/http-api.md, "OpenAPI"): every route with its answers and the error body, and a
/// path per model whose request and response schemas come from the model's own types.
///
/// The server serves it at `/$baseUrl/openapi.json` from the models ready now, so it changes when a version swaps;
/// `autoserve generate --openapi` writes the same document from a models folder, offline.
public enum OpenAPIDocument {
    /// What the document says of one model.
    public struct Model: Sendable {
        public var name: String
        public var description: String?
        /// The version serving (the document's own version is a digest of them).
        public var version: String
        public var typeName: String
        public var schemas: ModelSchemas
        public var example: JSONValue?
        /// Whether it answers `"explain": true` (docs/explanations.md); a model that does not takes only `false`.
        public var explains: Bool

        public init(
            name: String, description: String?, version: String, typeName: String, schemas: ModelSchemas, example: JSONValue?, explains: Bool = true
        ) {
            self.explains = explains
            self.name = name
            self.description = description
            self.version = version
            self.typeName = typeName
            self.schemas = schemas
            self.example = example
        }
    }

    /// The document, for models served under `prefix` (`""` or `/<baseUrl>`), at most `maxBatchRows` rows a batch; the
    /// sync route and the webhook only when they are on (`ADMIN_TOKEN`, `WEBHOOK_SECRET`): off, they answer 404.
    public static func document(models: [Model], prefix: String, maxBatchRows: Int, adminSync: Bool = false, webhook: Bool = false) -> JSONValue {
        let sorted = models.sorted { $0.name < $1.name }
        var paths: [String: JSONValue] = [:]
        for route in RouteTable(prefix: prefix).routes {
            switch (route.handler, route.requirement) {
            case (.model, _): for model in sorted { paths["\(prefix)/\(model.name)"] = modelPath(model, maxBatchRows: maxBatchRows) }
            case (_, .adminToken) where !adminSync, (_, .webhookSecret) where !webhook: continue
            default: paths[route.path] = pathItem(route, explains: models.contains { $0.explains })
            }
        }
        var digest = SHA256()
        for model in sorted { digest.update(data: Data("\(model.name)=\(model.version)\n".utf8)) }
        let version = digest.finalize().prefix(6).map { String(format: "%02x", $0) }.joined()
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "AutoServe",
                "version": .string(version),
                "description": .string(
                    "Row scoring: every model folder's transform_predict as a route. The request schema of each model comes from its "
                        + "Swift Variables type (or its LightGBM/XGBoost file's features); this version is a digest of the models' versions."),
            ],
            "tags": [
                ["name": "models", "description": "One route per model ready now"], ["name": "server", "description": "The server's own routes"],
                ["name": "v2", "description": "The Open Inference Protocol v2 (REST), for KServe, Triton and MLServer clients"],
            ],
            "paths": .object(paths),
            "components": [
                // The models' shared types, named after their model (docs/http-api.md, "OpenAPI"), beside the server's own.
                "schemas": .object(
                    sorted.reduce(into: ["Error": errorSchema, "RowError": rowErrorSchema, "Explanation": explanationSchema, "Explained": explainedSchema]) {
                        schemas, model in
                        schemas.merge(model.schemas.definitions) { first, _ in first }
                    }),
                "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer"]],
            ],
        ]
    }

    /// The path item of a route of `RouteTable` other than a model's: its summary and path are the table's, its
    /// answers, body and security are here. HEAD is left out (GET's, without the body).
    static func pathItem(_ route: RouteTable.Route, explains: Bool = true) -> JSONValue {
        let summary = route.summary
        let parameters: [JSONValue] = route.segments.filter { $0.hasPrefix("{") }.map { segment in
            ["name": .string(String(segment.dropFirst().dropLast())), "in": "path", "required": true, "schema": ["type": "string"]]
        }
        // Operation ids of the model routes of the v2 protocol that name a version end with `_version`.
        let suffix = route.segments.contains("{version}") ? "_version" : ""
        let v2ErrorSchema: JSONValue = ["type": "object", "required": ["error"], "properties": ["error": ["type": "string"]]]
        func v2Error(_ description: String) -> JSONValue { json(description, v2ErrorSchema) }
        let v2NotFound = v2Error("No model of that name, or the version named is not the one serving")
        var item: [String: JSONValue]
        switch route.handler {
        case .index: item = ["get": operation("index", summary, tag: "server", responses: ["200": json("The index", ["type": "object"])])]
        case .openAPI: item = ["get": operation("openapi", summary, tag: "server", responses: ["200": json("The OpenAPI 3.1 document", ["type": "object"])])]
        case .healthz: item = ["get": operation("healthz", summary, tag: "server", responses: ["200": json("Alive", statusSchema)])]
        case .readyz:
            item = [
                "get": operation(
                    "readyz", summary, tag: "server",
                    responses: ["200": json("Ready, with model counts", ["type": "object"]), "503": errorResponse("Not ready, with the reason")])
            ]
        case .metrics:
            item = [
                "get": operation(
                    "metrics", summary, tag: "server",
                    responses: ["200": ["description": "Prometheus text format 0.0.4", "content": ["text/plain": ["schema": ["type": "string"]]]]])
            ]
        case .all: item = allPath(summary, explains: explains)
        case .sync:
            item = [
                "post": operation(
                    "sync", summary, tag: "server",
                    responses: [
                        "202": json("Queued", ["type": "object", "properties": ["sync_id": ["type": "integer"], "status": ["type": "string"]]]),
                        "401": errorResponse("No bearer token, or a wrong one"),
                    ], security: [["bearer": []]])
            ]
        case .webhook:
            item = [
                "post": operation(
                    "gitWebhook", summary, tag: "server",
                    responses: [
                        "200": json("Ignored (another branch), a ping, or a delivery seen before", ["type": "object"]),
                        "202": json("Queued", ["type": "object"]), "400": errorResponse("Not a push event the server understands"),
                        "401": errorResponse("The signature or token does not verify"),
                        "413": errorResponse("The body is over MAX_BODY_BYTES"),
                    ], body: ["required": true, "content": ["application/json": ["schema": ["type": "object"]]]])
            ]
        case .v2Live: item = ["get": operation("v2_live", summary, tag: "v2", responses: ["200": json("Live", ["type": "object"])])]
        case .v2Ready:
            item = [
                "get": operation(
                    "v2_ready", summary, tag: "v2", responses: ["200": json("Ready", ["type": "object"]), "400": v2Error("Not ready, with the reason")])
            ]
        case .v2Server:
            item = [
                "get": operation(
                    "v2_server", summary, tag: "v2",
                    responses: [
                        "200": json(
                            "Name, version, extensions",
                            [
                                "type": "object", "required": ["name", "version", "extensions"],
                                "properties": ["name": ["type": "string"], "version": ["type": "string"], "extensions": ["type": "array"]],
                            ])
                    ])
            ]
        case .v2Model:
            let tensor: JSONValue = [
                "type": "object", "required": ["name", "datatype", "shape"],
                "properties": ["name": ["type": "string"], "datatype": ["type": "string"], "shape": ["type": "array", "items": ["type": "integer"]]],
            ]
            item = [
                "get": operation(
                    "v2_model\(suffix)", summary, tag: "v2",
                    responses: [
                        "200": json(
                            "The model's metadata",
                            [
                                "type": "object", "required": ["name", "versions", "platform", "inputs", "outputs"],
                                "properties": [
                                    "name": ["type": "string"], "versions": ["type": "array", "items": ["type": "string"]], "platform": ["type": "string"],
                                    "inputs": ["type": "array", "items": tensor], "outputs": ["type": "array", "items": tensor],
                                ],
                            ]),
                        "400": v2Error("The model has no version ready"), "404": v2NotFound,
                    ])
            ]
        case .v2ModelReady:
            item = [
                "get": operation(
                    "v2_model_ready\(suffix)", summary, tag: "v2",
                    responses: ["200": json("Ready", ["type": "object"]), "400": v2Error("Not ready"), "404": v2NotFound])
            ]
        case .v2Infer: item = ["post": v2Infer("v2_infer\(suffix)", summary, v2Error: v2Error, notFound: v2NotFound)]
        case .model: preconditionFailure("a model's path item is modelPath's")
        }
        if !parameters.isEmpty { item["parameters"] = .array(parameters) }
        return .object(item)
    }

    /// `POST /v2/models/{model}[/versions/{version}]/infer`.
    static func v2Infer(_ id: String, _ summary: String, v2Error: (String) -> JSONValue, notFound: JSONValue) -> JSONValue {
        let tensor: JSONValue = [
            "type": "object", "required": ["name", "datatype", "shape", "data"],
            "properties": [
                "name": ["type": "string"], "datatype": ["type": "string"], "shape": ["type": "array", "items": ["type": "integer"]],
                "data": ["type": "array"], "parameters": ["type": "object"],
            ],
        ]
        return operation(
            id, summary, tag: "v2",
            responses: [
                "200": json(
                    "One output tensor per output key, shape [N]",
                    [
                        "type": "object", "required": ["model_name", "outputs"],
                        "properties": [
                            "model_name": ["type": "string"], "model_version": ["type": "string"], "id": ["type": "string"],
                            "outputs": ["type": "array", "items": tensor],
                        ],
                    ]),
                "400": v2Error("Not JSON, tensors that do not make rows, a row whose variables do not decode, or no version ready"),
                "404": notFound, "413": v2Error("Over MAX_BODY_BYTES or MAX_BATCH_ROWS"), "422": v2Error("The model refused a row"),
                "500": v2Error("The model failed on a row"), "503": v2Error("The model's worker is restarting or behind"),
                "504": v2Error("The model took longer than its timeout_ms"),
            ],
            body: [
                "required": true,
                "content": [
                    "application/json": [
                        "schema": [
                            "type": "object", "required": ["inputs"],
                            "properties": [
                                "id": ["type": "string"], "inputs": ["type": "array", "items": tensor],
                                "outputs": ["type": "array", "items": ["type": "object", "properties": ["name": ["type": "string"]]]],
                                "parameters": ["type": "object"],
                            ],
                        ]
                    ]
                ],
            ])
    }

    static let statusSchema: JSONValue = ["type": "object", "properties": ["status": ["type": "string"]], "required": ["status"]]

    /// `{"status", "code", "message"}`: what every native error says, under `error`, `_error` or a model's name.
    static let errorObjectSchema: JSONValue = [
        "type": "object", "required": ["status", "code", "message"],
        "properties": ["status": ["type": "integer"], "code": ["type": "string"], "message": ["type": "string"]],
    ]

    /// `{"error": {...}}`, every error body of the native routes.
    static let errorSchema: JSONValue = ["type": "object", "required": ["error"], "properties": ["error": errorObjectSchema]]

    /// `_explanation` of one score (docs/explanations.md, "The API").
    static let explanationSchema: JSONValue = [
        "type": "object", "required": ["base", "contributions", "top", "reasons"],
        "properties": [
            "base": ["type": "number", "description": "The model's expected score"],
            "contributions": [
                "type": "object", "additionalProperties": ["type": "number"],
                "description": "Each feature's share of the score's difference from base; base plus every contribution is the raw score",
            ],
            "top": [
                "type": "array", "description": "The largest contributions in magnitude, largest first, as [feature, contribution]",
                "items": ["type": "array", "prefixItems": [["type": "string"], ["type": "number"]], "minItems": 2, "maxItems": 2],
            ],
            "reasons": ["type": "array", "items": ["type": "string"], "description": "The text a person reads for each entry of top"],
        ],
    ]

    /// An output asked with `"explain": true`: the model's output with `_explanation` (one, or one per class by name).
    static let explainedSchema: JSONValue = [
        "type": "object", "required": ["_explanation"],
        "properties": [
            "_explanation": [
                "anyOf": [
                    ["$ref": "#/components/schemas/Explanation"],
                    [
                        "type": "object", "description": "A multiclass model's: one per class",
                        "additionalProperties": ["$ref": "#/components/schemas/Explanation"],
                    ],
                ]
            ]
        ],
    ]

    /// `explain` in a scoring request's body.
    static let explainProperty: JSONValue = [
        "type": "boolean", "description": "true: each output carries _explanation, why the row scored as it did (docs/explanations.md)",
    ]

    /// `explain` of a model that does not explain its scores: `true` is 400 `explain_unsupported`.
    static let noExplainProperty: JSONValue = [
        "type": "boolean", "enum": [false], "description": "This model does not explain its scores (docs/explanations.md): only false",
    ]

    /// A batch row that failed: `{"_error": {...}}` in its place.
    static let rowErrorSchema: JSONValue = ["type": "object", "required": ["_error"], "properties": ["_error": errorObjectSchema]]

    static func errorResponse(_ description: String) -> JSONValue {
        ["description": .string(description), "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]]
    }

    static func json(_ description: String, _ schema: JSONValue) -> JSONValue {
        ["description": .string(description), "content": ["application/json": ["schema": schema]]]
    }

    static func operation(
        _ id: String, _ summary: String, tag: String, responses: [String: JSONValue], body: JSONValue? = nil, security: JSONValue? = nil,
        description: String? = nil
    ) -> JSONValue {
        var operation: [String: JSONValue] = [
            "operationId": .string(id), "summary": .string(summary), "tags": [.string(tag)], "responses": .object(responses),
        ]
        if let body { operation["requestBody"] = body }
        if let security { operation["security"] = security }
        if let description { operation["description"] = .string(description) }
        return .object(operation)
    }

    /// What any scoring route may answer besides its 200.
    static func scoringErrors(oneModel: Bool) -> [String: JSONValue] {
        var errors: [String: JSONValue] = [
            "400": errorResponse(
                "The body is not JSON, not a {\"variables\"} object, the variables do not decode (the message names the field), explain is not a boolean, or the model does not explain"
            ),
            "413": errorResponse("The body is over MAX_BODY_BYTES, or a batch has more than MAX_BATCH_ROWS rows"),
            "503": errorResponse("No version is ready, or the model's worker is restarting or behind"),
        ]
        if oneModel {
            errors["404"] = errorResponse("No model of that name")
            errors["422"] = errorResponse("The model refused the row (ModelError.invalidInput)")
            errors["500"] = errorResponse("The model failed (an error it threw, or an output that is not a JSON object)")
            errors["504"] = errorResponse("The model took longer than its timeout_ms")
        } else {
            errors["422"] = errorResponse("Every ready model refused the row")
            errors["500"] = errorResponse("Every ready model failed, with different errors")
            errors["504"] = errorResponse("Every ready model took longer than its timeout")
        }
        return errors
    }

    static func modelPath(_ model: Model, maxBatchRows: Int) -> JSONValue {
        let variables = model.schemas.variables
        let explainProperty = model.explains ? Self.explainProperty : Self.noExplainProperty
        var single: JSONValue = ["type": "object", "required": ["variables"], "properties": ["variables": variables, "explain": explainProperty]]
        if let example = model.example, case .object(var object) = single {
            object["example"] = ["variables": example]
            single = .object(object)
        }
        let batch: JSONValue = [
            "type": "object", "required": ["rows"],
            // A row that does not decode fails alone: the batch still answers 200, with its _error in the row's place.
            "properties": [
                "rows": [
                    "type": "array", "maxItems": .number(Double(maxBatchRows)),
                    "items": ["anyOf": [variables, ["description": "Any other value: answered with {\"_error\": {...}} in the row's place"]]],
                ],
                "explain": explainProperty,
            ],
        ]
        let outputs: JSONValue = [
            "type": "object", "required": ["outputs"],
            "properties": [
                "outputs": [
                    "type": "array",
                    "items": ["anyOf": [model.schemas.output, ["$ref": "#/components/schemas/RowError"], ["$ref": "#/components/schemas/Explained"]]],
                ]
            ],
        ]
        var responses = scoringErrors(oneModel: true)
        let headers: JSONValue = [
            "X-Model-Version": ["description": "The version that answered", "schema": ["type": "string"]],
            "X-Request-ID": ["description": "The request's id, as in the inference log", "schema": ["type": "string"]],
        ]
        responses["200"] = [
            "description": "The model's output; for a batch, {\"outputs\": [...]} in the rows' order, a failed row's _error in its place",
            "headers": headers,
            "content": ["application/json": ["schema": ["anyOf": [model.schemas.output, outputs, ["$ref": "#/components/schemas/Explained"]]]]],
        ]
        // An empty body scores {} (docs/http-api.md, "HTTP API"): optional only for a model whose variables may all be absent.
        let needsVariables = !(model.schemas.variables["required"]?.array?.isEmpty ?? true)
        let summary = model.description ?? "Score a row with \(model.name)"
        let description = "\(model.typeName), version \(model.version.prefix(12)). Send one row as {\"variables\": {...}} or a batch as {\"rows\": [...]}."
        return [
            "post": operation(
                "score_\(model.name)", summary, tag: "models", responses: responses,
                body: ["required": .bool(needsVariables), "content": ["application/json": ["schema": ["anyOf": [single, batch]]]]],
                description: description),
            "get": operation(
                "score_\(model.name)_empty", "Score \(model.name) with no variables ({})", tag: "models",
                responses: responses.merging(["200": ["description": "The model's output", "content": ["application/json": ["schema": model.schemas.output]]]])
                {
                    $1
                }),
        ]
    }

    /// `/all`; `explains`: whether some model explains (else `explain` takes only `false`: no model would answer).
    static func allPath(_ summary: String, explains: Bool) -> [String: JSONValue] {
        var responses = scoringErrors(oneModel: false)
        responses["200"] = json(
            "Each ready model's output by name; _errors holds the models that failed (or are not ready) with their error",
            [
                "type": "object",
                "properties": [
                    "_errors": ["type": "object", "additionalProperties": errorObjectSchema]
                ],
            ])
        let body: JSONValue = [
            "required": false,
            "content": [
                "application/json": [
                    "schema": [
                        "type": "object", "required": ["variables"],
                        "properties": ["variables": ["type": "object"], "explain": (explains ? explainProperty : noExplainProperty)],
                    ]
                ]
            ],
        ]
        return [
            "post": operation("score_all", summary, tag: "models", responses: responses, body: body),
            "get": operation("score_all_empty", "Score every ready model with no variables ({})", tag: "models", responses: responses),
        ]
    }
}
