import Foundation
import ServingCore
import Testing

/// Every route and status code of docs/http-api.md's "HTTP API", against the real server with real plugins and a real client.
///
/// One server serves all of these tests: the three example models, the `Echo` fixture and a folder that
/// does not compile, so that failures of one model are seen beside the models that work.
@Suite(.serialized)
struct ServerRouteTests {
    static let server = Task {
        try await TestServer.start(models: [
            "Iris": "\(Paths.modelsServe)/Iris",
            "ChurnRisk": "\(Paths.modelsServe)/ChurnRisk",
            "HousePrice": "\(Paths.modelsServe)/HousePrice",
            "Echo": "\(Paths.fixtures)/models/Echo",
            "CompileError": "\(Paths.fixtures)/broken/CompileError",
            "InitCounter": "\(Paths.fixtures)/models/InitCounter",
        ]) { configuration in
            configuration.maxBodyBytes = 4096
            // The example's `timeout_ms: 1000` shows the setting; a worker of this busy two-core machine can wait
            // longer than that for the CPU while the other suites build, and these tests ask about status codes.
            let manifest = "\(configuration.modelsDir)/HousePrice/model.yaml"
            let text = try String(contentsOfFile: manifest, encoding: .utf8)
            guard text.contains("timeout_ms: 1000") else { throw TestFailure("HousePrice's model.yaml no longer says timeout_ms: 1000") }
            try text.replacingOccurrences(of: "timeout_ms: 1000", with: "timeout_ms: 30000").write(toFile: manifest, atomically: true, encoding: .utf8)
        }
    }

    var client: HTTPClient { get async throws { try await Self.server.value.client } }

    @Test func postScoresARowWithTheModelVersionHeader() async throws {
        let answer = try await client.post("/Iris", Rows.setosa)
        #expect(answer.status == 200)
        #expect(answer.header("Content-Type") == "application/json")
        #expect(answer.json?["iris_class"] == .string("setosa"))
        let index = try await client.get("/")
        guard case .string(let version)? = index.json?["Iris"]?["version"] else {
            Issue.record("no version in the index")
            return
        }
        #expect(answer.header("X-Model-Version") == version)
        #expect(version.count == 64)
    }

    @Test func getAndAnEmptyPostScoreEmptyVariables() async throws {
        let get = try await client.get("/Echo")
        #expect(get.status == 200)
        #expect(get.json?["echo"] == .object([:]))
        let emptyPost = try await client.post("/Echo", "")
        #expect(emptyPost.status == 200)
        #expect(emptyPost.json?["echo"] == .object([:]))
        let needsInput = try await client.get("/ChurnRisk")
        #expect(needsInput.status == 422)
    }

    @Test func anEncodableStructOutputAndAMultiFileModel() async throws {
        let churn = try await client.post("/ChurnRisk", #"{"variables": {"tenure_months": 3, "monthly_charges": 95.5, "support_calls": 4}}"#)
        #expect(churn.status == 200)
        #expect(churn.json?["risk"] == .string("high"))
        #expect(churn.json?["reasons"] == .array(["short tenure", "high monthly charges", "month-to-month contract", "4 support calls"]))
        let house = try await client.post("/HousePrice", #"{"variables": {"area_sqm": 120, "year_built": 1990, "rooms": 4, "neighbourhood": "centre"}}"#)
        #expect(house.status == 200)
        #expect(house.json?["price"] == .number(834400))
    }

    @Test func aMissingFieldIsA400NamingIt() async throws {
        let answer = try await client.post("/Iris", #"{"variables": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_width": 0.2}}"#)
        #expect(answer.status == 400)
        #expect(answer.error("code") == .string("invalid_variables"))
        #expect(answer.error("status") == .number(400))
        #expect(answer.error("message")?.jsonText.contains("petal_length") == true)
        let wrongType = try await client.post("/Iris", #"{"variables": {"sepal_length": "long", "sepal_width": 3.5, "petal_length": 1, "petal_width": 0.2}}"#)
        #expect(wrongType.status == 400)
        #expect(wrongType.error("message")?.jsonText.contains("sepal_length") == true)
    }

    @Test(arguments: [
        ("not json at all", "invalid_json"),
        (#"{"variables": {"a": 1"#, "invalid_json"),
        (#"{"variables": {"a": 1}} trailing"#, "invalid_json"),
        (#"[1, 2, 3]"#, "invalid_body"),
        (#"{"vars": {}}"#, "missing_variables"),
        (#"{"variables": [1]}"#, "invalid_variables"),
        (#"{"variables": "x"}"#, "invalid_variables"),
        (String(repeating: "[", count: 300), "invalid_json"),
    ])
    func malformedBodiesAre400s(body: String, code: String) async throws {
        for path in ["/Echo", "/all"] {
            let answer = try await client.post(path, body)
            #expect(answer.status == 400, "\(path) \(body.prefix(40))")
            #expect(answer.error("code") == .string(code))
            #expect(answer.error("message")?.jsonText.contains("variables") == true)
        }
        #expect(try await client.get("/healthz").status == 200)
    }

    @Test func unknownModelIsA404ListingTheAvailableOnes() async throws {
        let answer = try await client.post("/Nope", Rows.setosa)
        #expect(answer.status == 404)
        #expect(answer.error("code") == .string("not_found"))
        let message = answer.error("message")?.jsonText ?? ""
        for name in ["Iris", "ChurnRisk", "HousePrice", "Echo"] { #expect(message.contains(name)) }
        #expect(try await client.get("/Iris/extra").status == 404)
    }

    @Test func wrongMethodsAre405WithAllow() async throws {
        for (method, path) in [("PUT", "/Iris"), ("DELETE", "/all"), ("POST", "/"), ("PATCH", "/healthz")] {
            let answer = try await client.send(method, path, body: "{}")
            #expect(answer.status == 405, "\(method) \(path)")
            #expect(answer.error("code") == .string("method_not_allowed"))
            #expect(answer.header("Allow") != nil)
        }
    }

    @Test func anUnknownMethodOnAKnownPathIs405() async throws {
        for path in ["/Iris", "/", "/metrics", "/openapi.json"] {
            let answer = try await client.send("QUERY", path)
            #expect(answer.status == 405, "QUERY \(path): \(answer.text)")
            #expect(answer.header("Allow") != nil)
        }
        #expect(try await client.send("QUERY", "/no/such/path").status == 404)
        #expect(try await client.send("POST", "/openapi.json", body: "{}").status == 405)
    }

    /// docs/http-api.md's "OpenAPI": a path per ready model with the schema of its own Variables type, none for a model that
    /// failed; the sync route and the webhook only when they are on.
    @Test func theOpenAPIDocumentDescribesEveryReadyModel() async throws {
        let answer = try await client.get("/openapi.json")
        #expect(answer.status == 200)
        #expect(answer.header("Content-Type") == "application/json")
        let document = try #require(answer.json)
        #expect(document["openapi"] == "3.1.0")
        guard case .object(let paths)? = document["paths"] else {
            Issue.record("no paths: \(answer.text)")
            return
        }
        for name in ["Iris", "ChurnRisk", "HousePrice", "Echo", "InitCounter"] { #expect(paths["/\(name)"] != nil, "\(name)") }
        #expect(paths["/CompileError"] == nil, "a model that does not build has no path")
        #expect(paths["/-/sync"] == nil && paths["/hooks/git"] == nil, "off without ADMIN_TOKEN and WEBHOOK_SECRET")
        for route in ["/", "/all", "/healthz", "/readyz", "/metrics", "/openapi.json"] { #expect(paths[route] != nil, "\(route)") }
        let iris = paths["/Iris"]?["post"]
        #expect(iris?["summary"] == "Multinomial logistic regression on the iris measurements (scikit-learn, 150 rows)")
        let single = iris?["requestBody"]?["content"]?["application/json"]?["schema"]?["anyOf"]?[0]
        #expect(single?["properties"]?["variables"]?["properties"]?["petal_width"] == ["type": "number", "format": "double"])
        #expect(single?["properties"]?["variables"]?["required"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"])
        #expect(single?["example"]?["variables"]?["sepal_length"] == .number(5.1), "the manifest's first example")
        let churnOutput = paths["/ChurnRisk"]?["post"]?["responses"]?["200"]?["content"]?["application/json"]?["schema"]?["anyOf"]?[0]
        #expect(churnOutput?["properties"]?["reasons"] == ["type": "array", "items": ["type": "string"]], "the Encodable output struct")
        #expect(paths["/Iris"]?["post"]?["responses"]?["422"] != nil && paths["/Iris"]?["post"]?["responses"]?["503"] != nil)
    }

    @Test func aBodyOverTheLimitIs413() async throws {
        let padding = String(repeating: " ", count: 5000)
        let answer = try await client.post("/Echo", #"{"variables": {}}"# + padding)
        #expect(answer.status == 413)
        #expect(answer.error("code") == .string("payload_too_large"))
        #expect(answer.error("message")?.jsonText.contains("MAX_BODY_BYTES") == true)
        #expect(try await client.post("/Echo", #"{"variables": {"x": 1}}"#).status == 200)
    }

    @Test func invalidInputIs422AndOtherModelErrorsAre500() async throws {
        let rejected = try await client.post("/Echo", #"{"variables": {"mode": "reject"}}"#)
        #expect(rejected.status == 422)
        #expect(rejected.error("code") == .string("invalid_input"))
        #expect(rejected.error("message")?.jsonText.contains("mode=reject asks the model to reject the row") == true)
        let exploded = try await client.post("/Echo", #"{"variables": {"mode": "explode"}}"#)
        #expect(exploded.status == 500)
        #expect(exploded.error("code") == .string("model_error"))
        #expect(exploded.error("message")?.jsonText.contains("Boom") == true)
        let notANumber = try await client.post("/Echo", #"{"variables": {"mode": "nan"}}"#)
        #expect(notANumber.status == 500)
    }

    @Test func aModelThatDoesNotCompileIsReportedWhileTheOthersServe() async throws {
        let index = try await client.get("/")
        let broken = index.json?["CompileError"]
        #expect(broken?["state"] == .string("failed"))
        let message = broken?["last_error"]?["message"]?.jsonText ?? ""
        #expect(message.contains("CompileError/etls.swift"))
        #expect(message.contains("cannot convert value of type 'String' to specified type 'Int'"))
        #expect(broken?["last_error"]?["line"] == .number(7))
        #expect(broken?["last_error"]?["build_log"]?.jsonText.contains("error:") == true)
        let answer = try await client.post("/CompileError", "{}")
        #expect(answer.status == 503)
        #expect(answer.error("code") == .string("model_failed"))
        #expect(index.json?["Iris"]?["state"] == .string("ready"))
        #expect(try await client.post("/Iris", Rows.setosa).status == 200)
    }

    @Test func allScoresEveryModelAndListsFailuresUnderErrors() async throws {
        let body = #"{"variables": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2, "tenure_months": 40, "mode": "explode"}}"#
        let answer = try await client.post("/all", body)
        #expect(answer.status == 200)
        #expect(answer.json?["Iris"]?["iris_class"] == .string("setosa"))
        #expect(answer.json?["ChurnRisk"]?["risk"] != nil)
        #expect(answer.json?["Echo"] == nil)
        #expect(answer.json?["_errors"]?["Echo"]?["status"] == .number(500))
        #expect(answer.json?["_errors"]?["HousePrice"]?["status"] == .number(400))
        #expect(answer.json?["_errors"]?["CompileError"]?["status"] == .number(503))
        let get = try await client.get("/all")
        #expect(get.status == 200)
        #expect(get.json?["Echo"]?["echo"] == .object([:]))
    }

    @Test func concurrentRequestsToOneModelAllAnswerCorrectly() async throws {
        let client = try await self.client
        let rows: [(String, String)] = [
            (Rows.setosa, "setosa"),
            (#"{"variables": {"sepal_length": 6.4, "sepal_width": 3.2, "petal_length": 4.5, "petal_width": 1.5}}"#, "versicolor"),
            (#"{"variables": {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}}"#, "virginica"),
        ]
        let wrong = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<16 {
                group.addTask {
                    var wrong = 0
                    for request in 0..<25 {
                        let (body, expected) = rows[(worker + request) % rows.count]
                        let answer = try await client.post("/Iris", body)
                        if answer.status != 200 || answer.json?["iris_class"] != .string(expected) { wrong += 1 }
                    }
                    return wrong
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(wrong == 0)
    }

    @Test func theModelObjectIsCreatedOncePerVersionNotPerRequest() async throws {
        for _ in 0..<20 {
            let answer = try await client.post("/InitCounter", #"{"variables": {}}"#)
            #expect(answer.json?["instances"] == .number(1))
        }
        #expect(try await client.post("/all", #"{"variables": {}}"#).json?["InitCounter"]?["instances"] == .number(1))
    }

    @Test func healthReadinessAndMetrics() async throws {
        let health = try await client.get("/healthz")
        #expect(health.status == 200)
        let ready = try await client.get("/readyz")
        #expect(ready.status == 200)
        #expect(ready.json?["models"]?["ready"] == .number(5))
        #expect(ready.json?["models"]?["failed"] == .number(1))
        _ = try await client.post("/Iris", Rows.setosa)
        let metrics = try await client.get("/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.header("Content-Type")?.hasPrefix("text/plain") == true)
        #expect(metrics.text.contains(#"autoserve_requests_total{model="Iris",status="200",version=""#))
        #expect(metrics.text.contains(#"autoserve_request_duration_seconds_bucket{model="Iris",le="+Inf"}"#))
        #expect(metrics.text.contains(#"autoserve_model_state{model="CompileError",state="failed"} 1"#))
        #expect(metrics.text.contains("# TYPE autoserve_requests_total counter"))
        // A real Prometheus parser reads the scrape whole.
        let parsed = try Self.parseMetrics(metrics.text)
        #expect(parsed.status == 0, "\(parsed.output)")
        #expect(parsed.output.contains("# autoserve_requests counter"), "\(parsed.output.prefix(400))")
        #expect(parsed.output.contains("# autoserve_request_duration_seconds histogram"))
        #expect(parsed.output.contains(#"autoserve_model_state{model="CompileError",state="failed"} 1.0"#))
        #expect(parsed.output.contains(#"autoserve_requests_total{model="Iris",status="200",version=""#))
    }

    /// `prometheus_client`'s parser (PyPI, in the repository's `.venv`, which `make test` fills) over `text`.
    static func parseMetrics(_ text: String) throws -> CommandLineTests.Run {
        try runWithInput("\(Paths.repository)/.venv/bin/python3", ["\(Paths.fixtures)/tools/parse_metrics.py"], input: Data(text.utf8))
    }

    @Test func theIndexDescribesEveryModel() async throws {
        let index = try await client.get("/")
        #expect(index.status == 200)
        let iris = index.json?["Iris"]
        #expect(iris?["state"] == .string("ready"))
        #expect(iris?["routes"] == .array(["/Iris", "/all"]))
        #expect(iris?["type"] == .string("Iris"))
        #expect(iris?["last_error"] == .null)
        #expect(iris?["loaded_at"] != .null)
        #expect(index.json?["_server"]?["ready"] == .bool(true))
    }
}
