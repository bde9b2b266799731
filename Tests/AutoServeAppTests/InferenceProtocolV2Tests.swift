import Foundation
import ServingCore
import Testing

/// docs/http-api.md's "Open Inference Protocol v2" through the real server and plugins (tritonclient checks the same routes in
/// `make openapi-check`): the protocol's bodies and statuses, rows equal to the native route's, its error shape.
@Suite(.serialized)
struct InferenceProtocolV2Tests {
    static func tensors(_ rows: [[String: Double]]) -> String {
        let names = rows.first.map { Array($0.keys).sorted() } ?? []
        let inputs = names.map { name in
            #"{"name": "\#(name)", "shape": [\#(rows.count)], "datatype": "FP64", "data": [\#(rows.map { "\($0[name]!)" }.joined(separator: ","))]}"#
        }
        return #"{"id": "req-9", "inputs": [\#(inputs.joined(separator: ","))]}"#
    }

    @Test func healthMetadataAndInferAnswerAsTheProtocolSays() async throws {
        let models = ["Iris": "\(Paths.modelsServe)/Iris", "CompileError": "\(Paths.fixtures)/broken/CompileError"]
        try await withTestServer(try await TestServer.start(models: models)) { server async throws in
            let client = server.client
            #expect(try await client.get("/v2/health/live").json == ["live": true])
            #expect(try await client.get("/v2/health/ready").json == ["ready": true])
            #expect(try await client.get("/v2").json?["name"] == "autoserve")
            let metadata = try await client.get("/v2/models/Iris")
            #expect(metadata.json?["inputs"]?[0] == ["name": "petal_length", "datatype": "FP64", "shape": [-1]], "\(metadata.text)")
            guard let version = metadata.json?["versions"]?[0]?.string else {
                Issue.record("no version: \(metadata.text)")
                return
            }
            #expect(try await client.get("/v2/models/Iris/ready").json == ["name": "Iris", "ready": true])
            #expect(try await client.get("/v2/models/Iris/versions/\(version)/ready").status == 200)
            #expect(try await client.get("/v2/models/Iris/versions/\(version.prefix(12))").status == 200, "the index's short version")
            let otherVersion = try await client.get("/v2/models/Iris/versions/\(String(repeating: "0", count: 64))")
            #expect(otherVersion.status == 404 && otherVersion.json?["error"]?.string?.contains("has no version") == true, "\(otherVersion.text)")
            let failed = try await client.get("/v2/models/CompileError/ready")
            #expect(failed.status == 400 && failed.json?["error"]?.string != nil, "\(failed.text)")
            let unknown = try await client.get("/v2/models/Nope")
            #expect(unknown.status == 404 && unknown.json?["error"]?.string?.contains("no model named 'Nope'") == true)

            var rows: [[String: Double]] = []
            for index in 0..<5 {
                let step = Double(index)
                let row: [String: Double] = [
                    "sepal_length": 4.5 + step * 0.6, "sepal_width": 3.0, "petal_length": 1.0 + step * 1.2, "petal_width": 0.2 + step * 0.5,
                ]
                rows.append(row)
            }
            let infer = try await client.post("/v2/models/Iris/versions/\(version)/infer", Self.tensors(rows))
            #expect(infer.status == 200, "\(infer.text)")
            #expect(infer.json?["id"] == "req-9" && infer.json?["model_name"] == "Iris" && infer.json?["model_version"] == .string(version))
            let objects: [String] = rows.map { row in
                let members: [String] = row.map { key, value in "\"\(key)\": \(value)" }
                return "{" + members.joined(separator: ",") + "}"
            }
            let native = try await client.post("/Iris", #"{"rows": [\#(objects.joined(separator: ","))]}"#)
            guard case .array(let outputs)? = infer.json?["outputs"], case .array(let expected)? = native.json?["outputs"] else {
                Issue.record("no outputs: \(infer.text) \(native.text)")
                return
            }
            #expect(outputs.map { $0["name"] } == ["iris_class", "iris_probability"])
            #expect(outputs[0] == ["name": "iris_class", "datatype": "BYTES", "shape": [5], "data": .array(expected.map { $0["iris_class"]! })])
            #expect(outputs[1] == ["name": "iris_probability", "datatype": "FP64", "shape": [5], "data": .array(expected.map { $0["iris_probability"]! })])

            // One row (the single-row path) answers as the native route's one row, with the version header.
            let one = try await client.post("/v2/models/Iris/infer", Self.tensors([rows[2]]))
            let nativeOne = try await client.post("/Iris", #"{"variables": \#(objects[2])}"#)
            #expect(one.status == 200 && one.json?["id"] == "req-9" && one.header("X-Model-Version") == version, "\(one.text)")
            #expect(one.json?["outputs"]?[0] == ["name": "iris_class", "datatype": "BYTES", "shape": [1], "data": [nativeOne.json?["iris_class"] ?? .null]])
            #expect(
                one.json?["outputs"]?[1] == [
                    "name": "iris_probability", "datatype": "FP64", "shape": [1], "data": [nativeOne.json?["iris_probability"] ?? .null],
                ])

            // Errors are {"error": "<string>"} with the native route's status.
            let cases: [(String, Int, String)] = [
                (#"{"inputs": [{"name": "sepal_length", "shape": [1], "datatype": "FP64", "data": [5.1]}]}"#, 400, "missing field"),
                (#"{"inputs": [{"name": "a", "shape": [2], "datatype": "FP64", "data": [1]}]}"#, 400, "shape says 2 rows and data holds 1"),
                (#"{"inputs": [{"name": "a", "shape": [1], "datatype": "FP128", "data": [1]}]}"#, 400, "datatype must be"),
                (#"{"inputs": [{"name": "a", "shape": [1], "datatype": "INT64", "data": [1.5]}]}"#, 400, "is not INT64"),
                ("{}", 400, "the request has no inputs"),
                ("[1", 400, "not JSON"),
                (Self.tensors([["sepal_length": -1, "sepal_width": 1, "petal_length": 1, "petal_width": 1]]), 422, "non-negative"),
            ]
            for (body, status, text) in cases {
                let answer = try await client.post("/v2/models/Iris/infer", body)
                #expect(answer.status == status, "\(body): \(answer.text)")
                #expect(answer.json?["error"]?.string?.contains(text) == true, "\(body): \(answer.text)")
            }
            let binary = try await client.send("POST", "/v2/models/Iris/infer", body: "{}", headers: ["Inference-Header-Content-Length": "2"])
            #expect(binary.status == 400 && binary.json?["error"]?.string?.contains("binary_data=False") == true)
            #expect(try await client.send("QUERY", "/v2/models/Iris/infer").status == 405)
            #expect(try await client.get("/v2/models/Iris/infer").status == 405)
        }
    }
}
