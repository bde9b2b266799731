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

    /// Where each walk ends on `text`, or `nil` when it refuses it (the quick one also when it leaves it).
    func walks(_ text: [UInt8]) -> (quick: Int?, exact: Int?) {
        text.withUnsafeBytes { raw in
            var quick = JSONParser(raw)
            var exact = JSONParser(raw)
            return (quick.skipValueQuickly() ? quick.index : nil, (try? exact.skipValueExactly()).map { exact.index })
        }
    }

    /// Every prefix of `text`, and `text` with each of its bytes replaced by each of `replacements`.
    func variants(of text: String, replacing replacements: [UInt8]) -> [[UInt8]] {
        let bytes = Array(text.utf8)
        var variants = (0..<bytes.count).map { Array(bytes[..<$0]) }
        for position in bytes.indices {
            for replacement in replacements {
                var changed = bytes
                changed[position] = replacement
                variants.append(changed)
            }
        }
        return variants
    }

    /// The quick walk over a row's bytes (`skipValueQuickly`) takes what is plain, leaves the rest to the exact one, and
    /// never accepts what the exact one refuses nor ends elsewhere: over documents of every kind, and every prefix and
    /// one-byte change of them.
    @Test func theQuickWalkAgreesWithTheExactOne() {
        let plain = [
            #"{"f000":-0.1234,"f001":1.5,"f002":0,"f003":-0,"f004":123456789012345678901234567890}"#, #" [1, [2, [3, {}]], {"a": []}] "#,
            "{\"s\": \"plain text ~ with DEL \u{7F}\", \"t\": true, \"f\": false, \"n\": null}", "0", "-12.50", #""""#, "[]", "{}",
            "\t{ \"a\" :\n[ true ,false,null ] }\r", String(repeating: "[", count: 256) + String(repeating: "]", count: 256),
            "{\"" + String(repeating: "k", count: 100) + "\":" + String(repeating: "9", count: 308) + "}",
            #"{"a\n\"\\\/\b\f\r\t": "\u00e9\u0041", "é😀": "ü"}"#, "[1e5, 1E-5, -2.5e+99, 1e-400, 0.5E-0012345]",
        ]
        let left = [
            #""\ud83d\ude00""#, "1e100", "1e400", String(repeating: "[", count: 257) + String(repeating: "]", count: 257),
            String(repeating: "9", count: 309), #"{"a": 1,}"#, "[01]", #"{"a" 1}"#, "[1 2]", "tru", "nul", "-", "1.", "1e", "{\"a\":\u{1}}",
            #""\x""#, #""\u12""#, "\"a\u{1}\"",
        ]
        for text in plain {
            let (quick, exact) = walks(Array(text.utf8))
            #expect(quick != nil && quick == exact, "\(text): quick \(String(describing: quick)), exact \(String(describing: exact))")
        }
        for text in left { #expect(walks(Array(text.utf8)).quick == nil, "\(text)") }
        var checked = 0
        for text in plain + left {
            for variant in variants(of: text, replacing: Array("\"{}[],:0-.e \\au+9".utf8) + [0x01, 0x80, 0xC3, 0xED, 0xFF]) {
                let (quick, exact) = walks(variant)
                if let quick {
                    #expect(quick == exact, "\(String(decoding: variant, as: UTF8.self)): quick \(quick), exact \(String(describing: exact))")
                }
                checked += 1
            }
        }
        #expect(checked > 20_000)
    }

    /// An infer request's tensors as the one-pass reader locates them (`nil` when it leaves the body), and as the
    /// general reader does (`nil` for an invalid body).
    func tensorReaders(_ text: [UInt8]) -> (quick: LocatedTensors?, exact: LocatedTensors?) {
        text.withUnsafeBytes { raw in (JSONParser.locateTensorsQuickly(in: raw), try? JSONParser.locateTensorsExactly(in: raw)) }
    }

    /// The usual infer bodies, compact or spaced as the protocol's clients write them, keys in any order, are read in
    /// one pass; a body it leaves (an escaped key, a list in `data`, no tensors, an invalid one) goes to the general
    /// reader; and what it locates is what the general reader locates, over every prefix and one-byte change.
    @Test func tensorsAreLocatedInOnePassAsTheGeneralReaderLocatesThem() throws {
        let usual = [
            #"{"inputs":[{"name":"f000","shape":[1],"datatype":"FP64","data":[-0.1234]},{"name":"f001","shape":[1],"datatype":"FP64","data":[7]}]}"#,
            #"{"id": "r-1", "inputs": [{"name": "a", "datatype": "BYTES", "shape": [3], "data": ["x", "\"y\"", null]}, {"data": [true, false, 1], "shape": [3, 1], "datatype": "BOOL", "name": "b", "parameters": {"content_type": "np"}}], "outputs": [{"name": "p"}], "parameters": {}}"#,
            "{ \"inputs\" : [ { \"name\" : \"é\" , \"shape\" : [ 2 ] , \"data\" : [ 1 , 2 ] , \"data\" : [ 3 ] , \"name\" : \"z\" } ] }\n",
            #"{"inputs":[{}],"inputs":7}"#, #"{"inputs":[{"name":1,"datatype":[],"shape":"x","data":{}}]}"#,
        ]
        let left = [
            #"{"inputs":[{"n\u0061me":"a","shape":[1],"datatype":"FP64","data":[1]}]}"#,
            #"{"inputs":[{"name":"a","shape":[1,1],"datatype":"FP64","data":[[1]]}]}"#, #"{"inputs":[]}"#, #"{"inputs":[1]}"#,
            #"{"outputs":[]}"#, #"{"inputs":[{"name":"a","data":[1e400]}]}"#, #"{"inputs":[{"name":"a","data":[1]}],}"#, "[]", "",
        ]
        for text in usual {
            let (quick, exact) = tensorReaders(Array(text.utf8))
            #expect(quick != nil && quick == exact, "\(text): quick \(String(describing: quick)), exact \(String(describing: exact))")
        }
        for text in left { #expect(tensorReaders(Array(text.utf8)).quick == nil, "\(text)") }
        // What the first one holds, by the bytes of each part.
        let first = Array(usual[0].utf8)
        let located = try #require(tensorReaders(first).quick)
        func text(_ member: JSONParser.ObjectMember?) -> String { member.map { String(decoding: first[$0.range], as: UTF8.self) } ?? "-" }
        #expect(
            located.tensors.map { [text($0.name), text($0.datatype), text($0.shape), text($0.data)] } == [
                [#""f000""#, #""FP64""#, "[1]", "[-0.1234]"], [#""f001""#, #""FP64""#, "[1]", "[7]"],
            ])
        #expect(located.values.map(text) == ["-0.1234", "7"] && located.tensors.map(\.values) == [0..<1, 1..<2])
        var (checked, taken) = (0, 0)
        for text in usual + left {
            for variant in variants(of: text, replacing: Array("\"{}[],:0-.e \\au".utf8) + [0x01, 0x80, 0xC3]) {
                let (quick, exact) = tensorReaders(variant)
                if let quick {
                    taken += 1
                    #expect(quick == exact, "\(String(decoding: variant, as: UTF8.self)): quick \(quick), exact \(String(describing: exact))")
                }
                checked += 1
            }
        }
        #expect(checked > 15_000 && taken > 2_500, "\(checked) variants, \(taken) read in one pass")
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
