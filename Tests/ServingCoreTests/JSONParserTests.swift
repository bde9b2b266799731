import Testing

@testable import ServingCore

struct JSONParserTests {
    @Test func parsesEveryKind() throws {
        let value = try JSONParser.parse(Array(#" {"a": [1, -2.5e3, 0, true, false, null], "s": "x\u00e9\ud83d\ude00\n\"\/", "o": {}} "#.utf8))
        #expect(value["a"] == .array([.number(1), .number(-2500), .number(0), .bool(true), .bool(false), .null]))
        #expect(value["s"] == .string("xé😀\n\"/"))
        #expect(value["o"] == .object([:]))
    }

    @Test(arguments: [
        "", "{", "{\"a\"}", "{\"a\":}", "[1,]", "[01]", "1.", "-", "tru", "\"abc", "\"\\x\"", "\"a\u{1}\"", "{} {}", "{'a': 1}",
        "[1 2]", "{\"a\":1,}", "\"\\u12\"", "NaN", "1e", "+1",
    ])
    func rejectsInvalidDocuments(text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(text.utf8)) }
    }

    @Test func nestingIsBounded() {
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(deep.utf8)) }
        let fine = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: Never.self) { try JSONParser.parse(Array(fine.utf8)) }
    }

    func locate(_ text: String) throws(JSONParseError) -> (String, JSONParser.ValueKind) {
        let bytes = Array(text.utf8)
        let result = bytes.withUnsafeBytes { raw -> Result<JSONParser.ObjectMember, JSONParseError> in
            do throws(JSONParseError) { return .success(try JSONParser.locateObjectMember("variables", in: raw)) } catch { return .failure(error) }
        }
        let member = try result.get()
        return (String(decoding: bytes[member.range], as: UTF8.self), member.kind)
    }

    @Test func locatesTheVariablesMember() throws {
        #expect(try locate(#"{"model": "x", "variables": {"a": [1, {"b": 2}]}, "z": null}"#) == (#"{"a": [1, {"b": 2}]}"#, .object))
        #expect(try locate(#"{"variables":"x"}"#) == (#""x""#, .string))
        // A repeated key: the first one counts, at the top level as inside the variables (JSONDecoder's rule).
        #expect(try locate(#"{"variables":{}, "variables": [1]}"#) == ("{}", .object))
        #expect(try locate(#"{"\u0076ariables": {"a": 1}}"#) == (#"{"a": 1}"#, .object))
        #expect(throws: JSONParseError.self) { try locate(#"{"vars": {}}"#) }
        #expect(throws: JSONParseError.self) { try locate(#"[{"variables": {}}]"#) }
        #expect(throws: JSONParseError.self) { try locate(#"{"variables": {}} x"#) }
        #expect(throws: JSONParseError.self) { try locate(#"{"variables": {"a": }}"#) }
    }

    /// Inputs that once hung the parser or read as something else, each with the reason it must give.
    @Test(arguments: [
        ("\"\\", "ends early"),  // a string ending in a backslash looped forever
        ("{\"variables\": \"\\", "ends early"),
        ("\"\\u12", "invalid escape"),
        ("\"\\ud800\"", "half of a surrogate pair"),
        ("\"\\udc00\"", "half of a surrogate pair"),
        ("\"\\ud800\\u0041\"", "half of a surrogate pair"),
        ("{\"a\": 1e400}", "beyond the range of a double"),
        ("[-1E+999]", "beyond the range of a double"),
        ("{\"a\":4" + String(repeating: "0", count: 308) + "}", "beyond the range of a double"),  // 309 digits, no exponent
        ("-2" + String(repeating: "0", count: 308) + ".5", "beyond the range of a double"),
    ])
    func rejectsWithTheReason(text: String, reason: String) {
        do {
            _ = try JSONParser.parse(Array(text.utf8))
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.contains(reason), "\(text): \(error)")
        }
    }

    /// The largest double has 309 digits: a number of 309 digits that is still in range is accepted.
    @Test func the309DigitsOfTheLargestDoubleParse() throws {
        let largest = "1" + String(repeating: "0", count: 308)
        #expect(try JSONParser.parse(Array(largest.utf8)) == .number(1e308))
    }

    @Test func invalidUTF8IsNamedAsSuch() {
        for bytes: [UInt8] in [
            [0x22, 0xFF, 0x22], [0x22, 0xC3, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],
        ] {
            do {
                _ = try JSONParser.parse(bytes)
                Issue.record("accepted \(bytes)")
            } catch {
                #expect(error.description.contains("not valid UTF-8"), "\(bytes): \(error)")
            }
        }
        #expect((try? JSONParser.parse(Array("\"é😀\u{7F}\"".utf8))) == .string("é😀\u{7F}"))
        #expect((try? JSONParser.parse(Array("1e-400".utf8))) == .number(0))
    }

    @Test func aLongRunOfBackslashesEndsInTime() {
        // Linear in the body: a megabyte of escapes that never closes is refused in one pass.
        let body = Array("\"".utf8) + Array(repeating: UInt8(ascii: "\\"), count: 1 << 20)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(body) }
    }

    @Test func subsetMatchingForExamples() {
        let output: JSONValue = .object(["class": .string("setosa"), "p": .number(0.98170000001), "extra": .array([.number(1)])])
        #expect(output.contains(.object(["class": .string("setosa")])))
        #expect(output.contains(.object(["p": .number(0.9817)])))
        #expect(!output.contains(.object(["p": .number(0.9818)])))
        #expect(output.mismatch(against: .object(["class": .string("virginica")])) == #"class: expected "virginica", got "setosa""#)
        #expect(output.mismatch(against: .object(["nope": .null])) == "nope: expected null, got nothing")
        #expect(output.mismatch(against: .object(["class": .string("setosa")])) == nil)
    }
}

struct ModelNameTests {
    @Test(arguments: ["Iris", "a", "Churn_2-b", String(repeating: "x", count: 64)])
    func acceptsValidNames(name: String) throws {
        #expect(try ModelName(validating: name).rawValue == name)
    }

    @Test(arguments: [
        ("", "empty"), ("1bad", "start with a letter"), ("_x", "start with a letter"), ("a b", "only letters"), ("a.b", "only letters"),
        ("all", "reserved"), ("ALL", "reserved"), (String(repeating: "x", count: 65), "longer than 64"), ("é", "start with a letter"),
    ])
    func rejectsInvalidNamesWithTheReason(name: String, reason: String) {
        #expect {
            try ModelName(validating: name)
        } throws: { error in
            (error as? ModelNameError)?.description.contains(reason) == true
        }
    }
}

struct MetricsTests {
    @Test func rendersThePrometheusTextFormat() {
        let metrics = Metrics()
        let instruments = RequestInstruments(metrics: metrics, model: "Iris", version: "abc")
        instruments.record(status: 200, seconds: 0.0003)
        instruments.record(status: 200, seconds: 20)
        instruments.record(status: 418, seconds: 0.001)
        metrics.increment("autoserve_requests_total", labels: ["A\"b", "500", ""])
        let text = metrics.render()
        #expect(text.contains("# HELP autoserve_requests_total Scoring requests by model, status and version.\n"))
        #expect(text.contains("# TYPE autoserve_requests_total counter\n"))
        #expect(text.contains(#"autoserve_requests_total{model="Iris",status="200",version="abc"} 2"#))
        #expect(text.contains(#"autoserve_requests_total{model="Iris",status="418",version="abc"} 1"#))
        #expect(text.contains(#"autoserve_requests_total{model="A\"b",status="500",version=""} 1"#))
        #expect(!text.contains(#"status="503""#), "a status no request answered has no series")
        #expect(text.contains(#"autoserve_request_duration_seconds_bucket{model="Iris",le="0.00025"} 0"#))
        #expect(text.contains(#"autoserve_request_duration_seconds_bucket{model="Iris",le="0.0005"} 1"#))
        #expect(text.contains(#"autoserve_request_duration_seconds_bucket{model="Iris",le="+Inf"} 3"#))
        #expect(text.contains(#"autoserve_request_duration_seconds_count{model="Iris"} 3"#))
    }

    @Test func aReplacedGaugeLosesTheSeriesThatAreGone() {
        let metrics = Metrics()
        metrics.replaceGauge("autoserve_model_state", with: [["Iris", "ready"]: 1, ["Churn", "ready"]: 1])
        metrics.replaceGauge("autoserve_model_state", with: [["Iris", "ready"]: 0, ["Iris", "failed"]: 1])
        let text = metrics.render()
        #expect(!text.contains("Churn"), "\(text)")
        #expect(text.contains(#"autoserve_model_state{model="Iris",state="failed"} 1"#), "\(text)")
        #expect(text.contains(#"autoserve_model_state{model="Iris",state="ready"} 0"#), "\(text)")
    }
}
