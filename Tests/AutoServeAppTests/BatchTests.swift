import AutoServeApp
import Foundation
import ServingCore
import Testing

/// docs/http-api.md's "HTTP API", batches: `POST /<Model> {"rows": [...]}` through the real server and real plugins, in worker
/// processes, on both scoring paths (the channel handler, and Hummingbird for a request with `Connection: close`).
@Suite(.serialized)
struct BatchTests {
    static let setosa = #"{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}"#
    static let virginica = #"{"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}"#

    @Test func aBatchAnswersEveryRowInOrderAndAFailedRowInItsPlace() async throws {
        let log = "\(try Paths.temporaryFolder("batch-log"))/inference.jsonl"
        let models = ["Iris": "\(Paths.modelsServe)/Iris", "ChurnRisk": "\(Paths.modelsServe)/ChurnRisk"]
        let server = try await TestServer.start(models: models) { configuration in
            configuration.maxBatchRows = 5
            configuration.inferenceLog = log
        }
        try await withTestServer(server) { server async throws in
            let client = server.client
            let single = try await client.post("/Iris", #"{"variables": \#(Self.virginica)}"#)
            let rows = #"{"rows": [\#(Self.setosa), {"sepal_length": "long"}, 3, \#(Self.virginica)]}"#
            let pipelined = try await client.post("/Iris", rows)
            #expect(pipelined.status == 200, "\(pipelined.text)")
            #expect(pipelined.header("X-Model-Version") == single.header("X-Model-Version"))
            // The same batch on its own connection with `Connection: close`, which Hummingbird answers.
            let raw = await RawHTTP.exchange(port: server.port, path: "/Iris", body: Array(rows.utf8))
            let text = String(decoding: raw, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 200"), "\(text)")
            let closed = text.range(of: "\r\n\r\n").flatMap { try? JSONParser.parse(Array(text[$0.upperBound...].utf8)) }
            for answer in [pipelined.json, closed] {
                guard case .array(let outputs)? = answer?["outputs"], outputs.count == 4 else {
                    Issue.record("no four outputs: \(answer?.jsonText ?? text)")
                    continue
                }
                #expect(outputs[0]["iris_class"] == .string("setosa"))
                #expect(outputs[1]["_error"]?["status"] == .number(400) && outputs[1]["_error"]?["code"] == .string("invalid_variables"))
                #expect(outputs[1]["_error"]?["message"]?.jsonText.contains("sepal_length") == true, "\(outputs[1].jsonText)")
                #expect(outputs[2]["_error"]?["message"]?.jsonText.contains("row 2 must be a JSON object") == true, "\(outputs[2].jsonText)")
                #expect(outputs[3] == single.json, "a row of a batch answers as the row alone")
            }
            // A model's own refusal (ChurnRisk's ModelError.invalidInput) is that row's 422.
            let churn = try await client.post("/ChurnRisk", #"{"rows": [{"tenure_months": 3, "contract": "month-to-month"}, {"tenure_months": -4}]}"#)
            #expect(churn.status == 200)
            #expect(churn.json?["outputs"]?[0]?["risk"] != nil && churn.json?["outputs"]?[1]?["_error"]?["status"] == .number(422), "\(churn.text)")

            let empty = try await client.post("/Iris", #"{"rows": []}"#)
            #expect(empty.status == 200 && empty.json == .object(["outputs": .array([])]))
            let tooMany = try await client.post("/Iris", #"{"rows": [{}, {}, {}, {}, {}, {}]}"#)
            #expect(tooMany.status == 413 && tooMany.error("code") == .string("too_many_rows"), "\(tooMany.text)")
            #expect(tooMany.error("message")?.jsonText.contains("MAX_BATCH_ROWS") == true)
            let all = try await client.post("/all", #"{"rows": [\#(Self.setosa)]}"#)
            #expect(all.status == 400, "\(all.text)")
            let unknown = try await client.post("/Nope", #"{"rows": [\#(Self.setosa)]}"#)
            #expect(unknown.status == 404)
            // Each row of a batch is one line of the inference log, with the request's id.
            let logged = try await client.send(
                "POST", "/Iris", body: #"{"rows": [\#(Self.setosa), \#(Self.setosa), {}]}"#, headers: ["X-Request-ID": "batch-7"])
            #expect(logged.header("X-Request-ID") == "batch-7")
            try await eventually("the batch's rows reach the log") {
                let lines = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").filter { $0.contains(#""request_id":"batch-7""#) } ?? []
                return lines.count == 3 && lines.filter { $0.contains(#""status":200"#) }.count == 2
                    && lines.filter { $0.contains(#""status":400"#) }.count == 1
            }
        }
    }

    @Test func aBatchOfAThousandRowsAnswersAsAThousandRequests() async throws {
        try await withTestServer(try await TestServer.start(models: ["Iris": "\(Paths.modelsServe)/Iris"])) { server async throws in
            var rows: [String] = []
            for index in 0..<1000 {
                let length = 4.3 + Double(index % 36) / 10
                rows.append(#"{"sepal_length": \#(length), "sepal_width": 3.0, "petal_length": \#(1 + Double(index % 59) / 10), "petal_width": 1.2}"#)
            }
            let answer = try await server.client.post("/Iris", #"{"rows": [\#(rows.joined(separator: ","))]}"#)
            #expect(answer.status == 200)
            guard case .array(let outputs)? = answer.json?["outputs"] else {
                Issue.record("no outputs")
                return
            }
            #expect(outputs.count == 1000)
            for index in stride(from: 0, to: 1000, by: 97) {
                let alone = try await server.client.post("/Iris", #"{"variables": \#(rows[index])}"#)
                #expect(outputs[index] == alone.json, "row \(index)")
            }
        }
    }

    /// Rows of 500 variables (8 KB each): a batch keeps no more of their bytes in flight than a worker queues, so every
    /// row is answered instead of being refused as `model_overloaded` past the worker's 1 MiB of unread rows.
    @Test func aBatchOfWideRowsIsAnsweredRowByRow() async throws {
        let server = try await TestServer.start(models: ["Echo": "\(Paths.fixtures)/models/Echo"]) { configuration in
            configuration.maxBodyBytes = 16 << 20
        }
        try await withTestServer(server) { server async throws in
            let row = "{" + (0..<500).map { #""variable_\#($0)": \#(Double($0) + 0.125)"# }.joined(separator: ", ") + "}"
            let answer = try await server.client.post("/Echo", #"{"rows": [\#(Array(repeating: row, count: 600).joined(separator: ","))]}"#)
            #expect(answer.status == 200)
            guard case .array(let outputs)? = answer.json?["outputs"] else {
                Issue.record("no outputs: \(answer.text.prefix(300))")
                return
            }
            #expect(outputs.count == 600)
            let refused = outputs.filter { $0["_error"] != nil }
            #expect(refused.isEmpty, "\(refused.count) rows refused, the first: \(refused.first?.jsonText ?? "")")
            #expect(outputs.allSatisfy { $0["echo"]?.object?.count == 500 })
        }
    }
}
