import Foundation
import ServingCore
import Testing

@testable import HTTPFrontend

struct RoutingTests {
    @Test(
        arguments: [
            ("/", "", ""), ("/Iris", "", "Iris"), ("/Iris/", "", "Iris"), ("/all", "", "all"), ("/Iris/x", "", nil),
            ("/api/v1", "/api/v1", ""), ("/api/v1/", "/api/v1", ""), ("/api/v1/Iris", "/api/v1", "Iris"), ("/Iris", "/api/v1", nil),
            ("/api/v1x/Iris", "/api/v1", nil), ("/api/v2/Iris", "/api/v1", nil),
        ] as [(String, String, String?)])
    func routesBelowThePrefix(path: String, prefix: String, route: String?) {
        #expect(ServeResponder.modelRoute(path, prefix: prefix) == route)
    }
}

struct RequestVariablesTests {
    func parse(_ body: String) -> Result<[UInt8], APIError> {
        parseBody(body).flatMap { parsed in
            guard case .row(let bytes) = parsed else { return .failure(APIError(status: 400, code: "a batch", message: "")) }
            return .success(bytes)
        }
    }

    func parseBody(_ body: String, maxRows: Int = 10) -> Result<ScoringBody, APIError> {
        Array(body.utf8).withUnsafeBytes { RequestVariables.parse($0, maxRows: maxRows) }
    }

    @Test func extractsEachRowOfABatch() throws {
        guard case .rows(let rows) = try parseBody(#"{"rows": [{"a": 1}, 7, {} , {"b": [1, {"c": 2}]}]}"#).get() else {
            Issue.record("not a batch")
            return
        }
        #expect(rows.count == 4)
        #expect(try rows[0].get() == Array(#"{"a": 1}"#.utf8))
        #expect(throws: APIError.self) { try rows[1].get() }
        #expect(try rows[2].get() == Array("{}".utf8))
        #expect(try rows[3].get() == Array(#"{"b": [1, {"c": 2}]}"#.utf8))
        guard case .rows(let none) = try parseBody(#"{"rows": []}"#).get() else { return }
        #expect(none.isEmpty)
    }

    @Test(arguments: [
        (#"{"rows": {"a": 1}}"#, 400, "invalid_rows"), (#"{"rows": [{}], "variables": {}}"#, 400, "invalid_body"),
        (#"{"rows": [{}, {}, {}, {}]}"#, 413, "too_many_rows"), (#"{"rows": [{}, ]}"#, 400, "invalid_json"),
    ])
    func refusesABadBatch(body: String, status: Int, code: String) {
        guard case .failure(let error) = parseBody(body, maxRows: 3) else {
            Issue.record("accepted \(body)")
            return
        }
        #expect(error.code == code)
        #expect(Int(error.status.code) == status)
    }

    @Test func extractsTheVariablesBytes() throws {
        #expect(try parse(#"{"variables": {"a": 1}}"#).get() == Array(#"{"a": 1}"#.utf8))
        #expect(try parse("").get() == Array("{}".utf8))
        #expect(try parse(" \n\t").get() == Array("{}".utf8))
    }

    @Test(arguments: [
        ("nope", "invalid_json"), (#"{"variables": 1}"#, "invalid_variables"), (#"{}"#, "missing_variables"),
        (#"[]"#, "invalid_body"), (#""variables""#, "invalid_body"),
    ])
    func refusesWhatIsNotAVariablesObject(body: String, code: String) {
        guard case .failure(let error) = parse(body) else {
            Issue.record("accepted \(body)")
            return
        }
        #expect(error.code == code)
        #expect(error.status.code == 400)
    }

    @Test func errorBodiesHaveTheSpecShape() throws {
        let error = APIError(status: 404, code: "not_found", message: "no \"x\"")
        let body = try JSONParser.parse(error.bodyBytes)
        #expect(body == .object(["error": .object(["status": .number(404), "code": .string("not_found"), "message": .string("no \"x\"")])]))
    }
}

/// What the index page writes from folder names, descriptions and errors is text, never markup.
@Test func theIndexPageEscapesWhatComesFromModels() {
    #expect(IndexPage.escape(#"<img src=x onerror="alert('1')"> & co"#) == "&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt; &amp; co")
    #expect(IndexPage.milliseconds(nil) == "—" && IndexPage.milliseconds(0.00042) == "0.42 ms" && IndexPage.milliseconds(0.0123) == "12.3 ms")
}

/// A curl line of the index page is pasted into a shell: a manifest's example or a Host header that quotes itself out
/// runs nothing, because each word is single-quoted.
@Test func curlLinesQuoteEveryWordForTheShell() throws {
    let hostile = ["'; touch pwned; echo '", "it's", "$(touch pwned)", "`touch pwned`", "a\\'b", "\n; touch pwned"]
    let folder = NSTemporaryDirectory() + "autoserve-quote-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.currentDirectoryURL = URL(fileURLWithPath: folder)
    process.arguments = ["-c", "printf '%s\\0' " + hostile.map(IndexPage.shellQuoted).joined(separator: " ")]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let printed = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(String(decoding: printed, as: UTF8.self).split(separator: "\0", omittingEmptySubsequences: false).dropLast().map(String.init) == hostile)
    #expect(!FileManager.default.fileExists(atPath: "\(folder)/pwned"))
}

/// Open Inference Protocol tensors: a value outside its datatype's range, or an input named twice, is a 400; the rows
/// are the variables objects the native route sends, each value as it came.
struct InferenceTensorTests {
    func rows(_ inputs: String, outputs: String = "") -> Result<InferenceRequest, InferenceProtocolV2.Failure> {
        Array(#"{"inputs": \#(inputs)\#(outputs)}"#.utf8).withUnsafeBytes { InferenceRequest.parse($0, maxRows: 100) }
    }

    func tensor(_ name: String, _ datatype: String, _ values: String, shape: String = "[1]") -> String {
        #"{"name": "\#(name)", "datatype": "\#(datatype)", "shape": \#(shape), "data": [\#(values)]}"#
    }

    @Test(arguments: [
        ("INT8", "127", true), ("INT8", "128", false), ("INT8", "-128", true), ("INT8", "1e300", false), ("UINT8", "-5", false),
        ("UINT8", "255", true), ("UINT16", "65536", false), ("INT32", "2147483648", false), ("INT64", "9223372036854775807", false),
        ("INT64", "-9223372036854775808", true), ("UINT64", "18446744073709551616", false), ("INT16", "1.5", false), ("FP16", "65504", true),
        ("FP16", "70000", false), ("FP16", "-65504.0", true), ("FP16", "65504.5", false), ("FP32", "1e300", false), ("FP32", "3e38", true),
        ("FP32", "340282346638528859811704183484516925440", true), ("FP32", "340282356779733661637539395458142568448", false),
        ("FP64", "1e300", true), ("BOOL", "2", false), ("INT8", "2.0", true), ("INT64", "123456789012345678", true), ("BYTES", "1", false),
        ("FP64", "\"1\"", false), ("BOOL", "true", true), ("FP64", "[1, 2]", false),
    ])
    func valuesFitTheirDatatype(datatype: String, value: String, fits: Bool) {
        switch rows("[\(tensor("x", datatype, value))]") {
        case .success(let request): #expect(fits, "\(datatype) \(value) was taken as \(request.rows.map { String(decoding: $0, as: UTF8.self) })")
        case .failure(let failure):
            #expect(!fits, "\(datatype) \(value): \(failure.message)")
            #expect(failure.status == 400 && failure.message.contains("is not \(datatype)"))
        }
    }

    /// Names are compared as the text they spell, escaped or not, among any number of inputs.
    @Test(arguments: [("x", "x"), ("x", #"\u0078"#), (#"\u0078"#, "x"), ("é", #"\u00e9"#)])
    func anInputNamedTwiceIsRefused(first: String, second: String) {
        let others = (0..<300).map { tensor("v\($0)", "FP64", "1") }
        let inputs = [tensor(first, "FP64", "1")] + others + [tensor(second, "FP64", "2")]
        guard case .failure(let failure) = rows("[\(inputs.joined(separator: ","))]") else {
            Issue.record("a repeated input was taken: \(first), \(second)")
            return
        }
        #expect(failure.status == 400 && failure.message.contains("appears twice"), "\(failure.message)")
        guard case .success(let request) = rows("[\(([tensor(first, "FP64", "1")] + others).joined(separator: ","))]") else {
            Issue.record("301 inputs of different names were refused")
            return
        }
        #expect(request.rows.count == 1)
    }

    /// Each row is an object of the inputs' values in the inputs' order, names and values as they came; BOOL's 0 and 1
    /// become booleans, `[N, 1]` may come as one list per row, and the request's id and outputs are kept.
    @Test func rowsAreTheVariablesObjectsOfTheNativeRoute() throws {
        let inputs = [
            tensor("a", "FP64", "1.5, -2e-3, null", shape: "[3]"), tensor("b\\u0062", "BOOL", "1, 0, true", shape: "[3]"),
            tensor("c", "BYTES", #""x", "\"y\"", null"#, shape: "[3]"),
            tensor("d", "INT32", "[7], [8], [9]", shape: "[3, 1]"),
        ]
        let request = try rows("[\(inputs.joined(separator: ", "))]", outputs: #", "id": "req-1", "outputs": [{"name": "p"}]"#).get()
        #expect(
            request.rows.map { String(decoding: $0, as: UTF8.self) } == [
                #"{"a":1.5,"b\u0062":true,"c":"x","d":7}"#, #"{"a":-2e-3,"b\u0062":false,"c":"\"y\"","d":8}"#, #"{"a":null,"b\u0062":true,"c":null,"d":9}"#,
            ])
        #expect(request.id == "req-1" && request.requested == ["p"])
        for row in request.rows { #expect((try? JSONParser.parse(row))?.object?.count == 4) }
    }

    /// A batch's rows outgrow the room first made for them (every row repeats every name, and BOOL's 0 and 1 grow into
    /// `false` and `true`): each row is still its whole object, in order.
    @Test func rowsOutgrowTheirFirstRoom() throws {
        let (rowCount, tensorCount) = (50, 40)
        let inputs = (0..<tensorCount).map { input in
            tensor(
                "a_rather_long_variable_name_\(input)", "BOOL", (0..<rowCount).map { String(($0 + input) % 2) }.joined(separator: ","), shape: "[\(rowCount)]")
        }
        let request = try rows("[\(inputs.joined(separator: ","))]").get()
        #expect(request.rows.count == rowCount)
        for (row, bytes) in request.rows.enumerated() {
            let expected = (0..<tensorCount).map { #""a_rather_long_variable_name_\#($0)":\#(($0 + row) % 2 == 1)"# }.joined(separator: ",")
            #expect(String(decoding: bytes, as: UTF8.self) == "{\(expected)}")
        }
    }

    @Test(arguments: [
        ("[", "not JSON"), ("[1]", "must be a JSON object"), (#"{"inputs": []}"#, "no inputs"), (#"{"inputs": [1]}"#, "input 0 has no name"),
        (#"{"inputs": [{"name": "a", "datatype": "FP8", "shape": [1], "data": [1]}]}"#, "datatype must be"),
        (#"{"inputs": [{"name": "a", "datatype": "FP64", "shape": [1, 2], "data": [1]}]}"#, "shape must be"),
        (#"{"inputs": [{"name": "a", "datatype": "FP64", "shape": [1.5], "data": [1]}]}"#, "shape must be"),
        (#"{"inputs": [{"name": "a", "datatype": "FP64", "shape": [1], "data": 1}]}"#, "data must be a list"),
        (#"{"inputs": [{"name": "a", "datatype": "FP64", "shape": [2], "data": [1]}]}"#, "shape says 2 rows and data holds 1"),
        (
            #"{"inputs": [{"name": "a", "datatype": "FP64", "shape": [1], "data": [1]}, {"name": "b", "datatype": "FP64", "shape": [2], "data": [1, 2]}]}"#,
            "has 2 rows and the inputs before it 1"
        ),
    ])
    func malformedRequestsSayWhatIsWrong(body: String, words: String) {
        switch Array(body.utf8).withUnsafeBytes({ InferenceRequest.parse($0, maxRows: 100) }) {
        case .success(let request): Issue.record("\(body) was taken as \(request.rows.count) rows")
        case .failure(let failure): #expect(failure.status == 400 && failure.message.contains(words), "\(body): \(failure.message)")
        }
    }
}

/// The infer answer is written from the outputs' bytes; it holds what a tree of each output, rendered as a tree, held
/// (the renderer it replaced, kept here as the oracle): output tensors sorted by name, `null` for a row without the
/// output, FP64 / BOOL / BYTES by the values' kinds, other values' JSON text as BYTES, the requested outputs only.
struct InferenceRenderTests {
    /// The tree renderer this server had before: the expected body, or the expected error's status and message.
    static func oracle(_ outcomes: [Result<[UInt8], APIError>], model: String, id: String?, requested: [String]?) -> (Int, JSONValue) {
        var outputs: [[String: JSONValue]] = []
        for (row, outcome) in outcomes.enumerated() {
            switch outcome {
            case .success(let bytes):
                guard case .object(let output)? = try? JSONParser.parse(bytes) else {
                    return (500, ["error": .string("row \(row + 1): \(model) answered something that is not a JSON object")])
                }
                outputs.append(output)
            case .failure(let failure):
                return (Int(failure.status.code), ["error": .string(outcomes.count == 1 ? failure.message : "row \(row + 1): \(failure.message)")])
            }
        }
        var names = Set<String>()
        for output in outputs { names.formUnion(output.keys) }
        if let requested {
            if let missing = requested.first(where: { !names.contains($0) }), !outputs.isEmpty {
                return (400, ["error": .string("\(model) has no output '\(missing)'; its outputs are \(names.sorted().joined(separator: ", "))")])
            }
            names = Set(requested)
        }
        var tensors: [JSONValue] = []
        for name in names.sorted() {
            let values = outputs.map { $0[name] ?? .null }
            var datatype = "BYTES"
            var data = values.map { value -> JSONValue in if case .string = value { value } else { .string(value.jsonText) } }
            if values.allSatisfy({ if case .number = $0 { true } else { $0 == .null } }) {
                (datatype, data) = ("FP64", values)
            } else if values.allSatisfy({ if case .bool = $0 { true } else { $0 == .null } }) {
                (datatype, data) = ("BOOL", values)
            }
            tensors.append(["name": .string(name), "datatype": .string(datatype), "shape": [.number(Double(outputs.count))], "data": .array(data)])
        }
        var body: [String: JSONValue] = ["model_name": .string(model), "model_version": "v1", "outputs": .array(tensors)]
        if let id { body["id"] = .string(id) }
        return (200, .object(body))
    }

    static let outputs = [
        #"{"a": 1.5, "b": true, "c": "x"}"#, #" {"b": false, "a": -2e-7, "d": {"k": [1, "é"]}, "a": 9} "#, #"{"a": null, "c": 3, "e": "\u00e9\n"}"#,
        #"{}"#, #"{"a": 1e400, "c": [true]}"#, #"[1]"#, #"{"a": 1"#, #""text""#,
    ]

    @Test func everyCombinationOfOutputsAnswersAsTheTreeDid() throws {
        let failure = APIError(status: 422, code: "model_error", message: "x must be non-negative")
        var cases: [[Result<[UInt8], APIError>]] = Self.outputs.map { [.success(Array($0.utf8))] }
        for first in Self.outputs.indices {
            for second in Self.outputs.indices { cases.append([.success(Array(Self.outputs[first].utf8)), .success(Array(Self.outputs[second].utf8))]) }
        }
        cases.append([.success(Array(Self.outputs[0].utf8)), .failure(failure)])
        cases.append([.failure(failure)])
        let requests: [(String?, [String]?)] = [(nil, nil), ("req-1", nil), (nil, ["a"]), ("r", ["c", "a", "c"]), (nil, ["zz"]), (nil, [])]
        var compared = 0
        for outcomes in cases {
            for (id, requested) in requests {
                let answer = InferenceProtocolV2.render(outcomes, model: "M", version: "v1", id: id, requested: requested)
                let (status, expected) = Self.oracle(outcomes, model: "M", id: id, requested: requested)
                #expect(answer.status == status, "\(outcomes) \(requested ?? [])")
                // The new answer copies numbers as the worker wrote them: 1e400 stays 1e400 where the tree wrote null.
                let text = String(decoding: answer.body, as: UTF8.self).replacingOccurrences(of: "1e400", with: "null")
                let body = try JSONParser.parse(Array(text.utf8))
                #expect(body == expected, "\(outcomes): \(body.jsonText) against \(expected.jsonText)")
                compared += 1
            }
        }
        #expect(compared == (8 + 8 * 8 + 2) * 6)
    }

    @Test func aBodyIsItsKeysInSortedOrder() {
        let answer = InferenceProtocolV2.render([.success(Array(#"{"p": 0.25, "c": "setosa"}"#.utf8))], model: "Iris", version: "v1", id: "9", requested: nil)
        #expect(
            String(decoding: answer.body, as: UTF8.self)
                == #"{"id":"9","model_name":"Iris","model_version":"v1","outputs":[{"data":["setosa"],"datatype":"BYTES","name":"c","shape":[1]},{"data":[0.25],"datatype":"FP64","name":"p","shape":[1]}]}"#
        )
    }
}
