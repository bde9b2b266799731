import Foundation
import Testing

@testable import AutoServeModel

/// The shortcut decoder against Foundation's `JSONDecoder`: whenever it answers, it answers what Foundation
/// answers, and `_AutoServePlugin.decode` (shortcut, then Foundation) always gives Foundation's value or error.
struct VariablesDecoderTests {
    struct Iris: Decodable, Equatable {
        var sepal_length: Double
        var sepal_width: Double
        var petal_length: Double
        var petal_width: Double
    }

    struct Everything: Decodable, Equatable {
        enum Plan: String, Decodable { case basic, premium }
        struct Inner: Decodable, Equatable {
            var depth: Int
            var tags: [String]
        }
        var plan: Plan
        var name: String
        var flag: Bool
        var small: Int8
        var unsigned: UInt16
        var big: Int64
        var ratio: Float
        var values: [Double]
        var matrix: [[Int]]
        var inner: Inner
        var maybe: Int?
        var absent: String?
        var counts: [String: Int]
        var extra: JSON
    }

    /// A hand-written `init(from:)` that tries one type, then another, as real models do.
    struct Flexible: Decodable, Equatable {
        var value: String
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if let number = try? container.decode(Int.self, forKey: .value) {
                value = "int \(number)"
            } else if let number = try? container.decode(Double.self, forKey: .value) {
                value = "double \(number)"
            } else {
                value = "string " + (try container.decode(String.self, forKey: .value))
            }
        }
        enum CodingKeys: String, CodingKey { case value }
    }

    struct Foundationish: Decodable, Equatable {
        var data: Data?
        var date: Date?
        var url: URL?
        var decimal: Decimal?
    }

    struct Single<Value: Decodable & Equatable>: Decodable, Equatable { var x: Value }

    /// What `JSONDecoder` makes of `text`, and what the plugin's decode makes of it; the shortcut alone must
    /// either give up (nil) or give Foundation's value. Returns whether the shortcut answered.
    func compare<Value: Decodable & Equatable>(_ type: Value.Type, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        compare(type, bytes: Array(text.utf8), sourceLocation: sourceLocation)
    }

    func compare<Value: Decodable & Equatable>(_ type: Value.Type, bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let shown = String(decoding: bytes, as: UTF8.self)
        let reference = Result { try JSONDecoder().decode(type, from: Data(bytes)) }
        let fast = bytes.withUnsafeBufferPointer { VariablesDecoder.decode(type, from: $0) }
        if let fast {
            #expect(fast == (try? reference.get()), "shortcut disagrees on \(shown)", sourceLocation: sourceLocation)
        }
        let plugin = Result { try bytes.withUnsafeBufferPointer { try _AutoServePlugin.decode(type, from: $0) } }
        switch (plugin, reference) {
        case (.success(let value), .success(let expected)):
            #expect(value == expected, "plugin decode disagrees on \(shown)", sourceLocation: sourceLocation)
        case (.failure(let error), .failure(let expected)):
            #expect(
                _AutoServePlugin.describeDecoding(error) == _AutoServePlugin.describeDecoding(expected),
                "plugin decode fails differently on \(shown)", sourceLocation: sourceLocation)
        default:
            Issue.record("plugin decode \(plugin) but JSONDecoder \(reference) on \(shown)", sourceLocation: sourceLocation)
        }
        return fast != nil
    }

    @Test func theCommonRowsTakeTheShortcut() throws {
        #expect(compare(Iris.self, #"{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}"#) == true)
        #expect(compare(Iris.self, #" { "petal_width":0, "petal_length":-0.0,"sepal_width":12345,"sepal_length":0.30000000000000004 } "#) == true)
        let everything = #"""
            {"plan": "premium", "name": "h\u00e9\"llo\n\ud83d\ude00", "flag": true, "small": -128, "unsigned": 65535,
             "big": -9223372036854775808, "ratio": 0.25, "values": [1, 2.5, -3], "matrix": [[1], [], [2, 3]],
             "inner": {"depth": 3, "tags": ["a", "b"]}, "maybe": null, "counts": {"a": 1, "b": 2},
             "extra": {"list": [true, null, 1.5, "s"], "o": {}}, "ignored": [1, {"x": 2}]}
            """#
        #expect(compare(Everything.self, everything) == true)
        #expect(compare([String: JSON].self, #"{"a": [1, {"b": null}], "c": "d", "e": false}"#) == true)
        #expect(compare(JSON.self, #"{"a": 1}"#) == true)
        #expect(compare(Flexible.self, #"{"value": 3}"#) == true)
        #expect(compare(Flexible.self, #"{"value": 3.5}"#) == true)
        #expect(compare(Flexible.self, #"{"value": "x"}"#) == true)
        let empty: [UInt8] = []
        #expect(empty.withUnsafeBufferPointer { VariablesDecoder.decode([String: JSON].self, from: $0) } == [:])
        #expect(try empty.withUnsafeBufferPointer { try _AutoServePlugin.decode([String: JSON].self, from: $0) } == [:])
    }

    @Test func missingWrongAndNullFieldsGetFoundationsErrors() {
        #expect(compare(Iris.self, #"{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4}"#) == false)
        #expect(compare(Iris.self, #"{"sepal_length": "5.1", "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 1}"#) == false)
        #expect(compare(Iris.self, #"{"sepal_length": null, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 1}"#) == false)
        #expect(compare(Iris.self, #"[1, 2]"#) == false)
        #expect(compare(Everything.Inner.self, #"{"depth": 1, "tags": ["a", 2]}"#) == false)
        #expect(compare(Everything.Inner.self, #"{"depth": 1, "tags": ["a", null]}"#) == false)
        #expect(compare(Single<Everything.Plan>.self, #"{"x": "gold"}"#) == false)
        #expect(compare(Single<Bool>.self, #"{"x": 1}"#) == false)
        #expect(compare(Single<String>.self, #"{"x": 1}"#) == false)
        #expect(compare(Single<[Int]>.self, #"{"x": {"a": 1}}"#) == false)
    }

    /// Numbers and strings whose answer is Foundation's to give: the shortcut steps aside.
    @Test func foundationDecidesTheUnusual() {
        for text in [
            #"{"x": 1.0}"#, #"{"x": -0.00}"#, #"{"x": 255.0}"#, #"{"x": 256.0}"#, #"{"x": 1e2}"#, #"{"x": 1.5}"#, #"{"x": 99999999999999999999}"#,
            #"{"x": -0}"#, #"{"x": 300}"#,
        ] {
            _ = compare(Single<Int>.self, text)
            _ = compare(Single<UInt8>.self, text)
            _ = compare(Single<Int8>.self, text)
            _ = compare(Single<UInt>.self, text)
        }
        for text in [
            #"{"x": 1e400}"#, #"{"x": -1e400}"#, #"{"x": 1e-400}"#, #"{"x": 4.9e-324}"#, #"{"x": 1E+2}"#,
            #"{"x": 0.0000000000000000000000000000000000000000000000000001}"#, #"{"x": 123456789012345678901234567890}"#,
        ] {
            _ = compare(Single<Double>.self, text)
            _ = compare(Single<Float>.self, text)
            _ = compare(JSON.self, text)
        }
        _ = compare(Single<Float>.self, #"{"x": 3.4028236e38}"#)
        _ = compare(Single<Float>.self, #"{"x": 1.00000005960464477539062499}"#)
        #expect(compare(Single<Int>.self, #"{"x": 1, "x": 2}"#) == true)
        #expect(compare([String: Int].self, #"{"x": 1, "x": 2}"#) == false)
        #expect(compare([String: JSON].self, #"{"x": 1, "x": 2}"#) == false)
        #expect(compare(Single<String>.self, #"{"x": "\ud800"}"#) == false)
        #expect(compare(Single<String>.self, #"{"x": "\ud83d\ude00"}"#) == true)
        #expect(compare(Single<String>.self, #"{"x\u0041": "a", "x": "b"}"#) == true)
        #expect(compare(Foundationish.self, #"{"data": "aGVsbG8=", "date": 1.5, "url": "http://a/b", "decimal": 1.10}"#) == false)
        #expect(compare(Foundationish.self, #"{}"#) == true)
        _ = compare([Int: String].self, #"{"1": "a", "x": "b"}"#)
        #expect(compare([Int: String].self, #"{"1": "a", "22": "b"}"#) == true)
        #expect(compare(Single<Int>.self, #"{"x": 1,}"#) == false)
        #expect(compare(Single<Int>.self, "{\"x\": \"a\u{1}\"}") == false)
        #expect(compare(Single<String>.self, bytes: Array(#"{"x": "a"#.utf8) + [0xFF] + Array(#""}"#.utf8)) == false)
        #expect(compare(Single<String>.self, #"{"x": "héllo ✓ 😀"}"#) == true, "UTF-8 as it comes, without escapes")
        #expect(compare([String: JSON].self, #"{"clé": "valeur", "n": 1}"#) == true)
        #expect(compare(Single<String>.self, bytes: Array(#"{"x": "caf"#.utf8) + [0xC3] + Array(#""}"#.utf8)) == false, "a cut sequence")
    }

    /// Doubles as a client prints them, from Python's `repr` to fixed precision, read exactly as Foundation reads them.
    @Test func randomNumbersReadExactlyLikeFoundation() {
        var generator = SystemRandomNumberGenerator()
        var shortcuts = 0
        for round in 0..<3_000 {
            let value = Double.random(in: -1e6...1e6, using: &generator) / pow(10, Double(round % 12))
            let texts = [String(value), String(format: "%.17f", value), String(format: "%.3f", value), String(Int(value))]
            for text in texts where compare(Single<Double>.self, #"{"x": \#(text)}"#) == true { shortcuts += 1 }
            _ = compare(Single<Float>.self, #"{"x": \#(String(format: "%.4f", value))}"#)
        }
        #expect(shortcuts > 8_000)
    }

    /// A number's value is taken while parsing when its significand (up to 19 digits, leading zeros included) is at
    /// most 2^53 and it has no exponent: one correctly rounded division, Foundation's value; past that, Foundation's.
    @Test func numbersReadWhileParsingAreFoundationsAtTheirLimits() throws {
        let cases: [(text: String, whileParsing: Bool)] = [
            ("9007199254740992", true), ("9007199254740993", false), ("-9007199254740992.0", false), ("900719925474099.2", true),
            ("0.0000000000000001", true), ("0.00000000000000012", true), ("0.000000000000000123", true), ("0.0000000000000001234", false),
            ("1234567890123456789", false), ("0.1234567890123456", true), ("0.1234567890123456789", false),
            ("-0.0", true), ("0", true), ("-0", true), ("1.5e3", false), ("123456.0000000000000000001", false),
            ("0.1", true), ("-2.2250738585072014", false), ("1.7976931348623157", false), ("-0.2250738585072014", true),
        ]
        for (text, whileParsing) in cases {
            let row = #"{"x": \#(text)}"#
            let tape = try #require(Array(row.utf8).withUnsafeBufferPointer { JSONTape(parsing: $0) })
            #expect(tape.node(2).exact == whileParsing, "\(text)")
            // Foundation's value either way; read while parsing, the shortcut answers.
            #expect(compare(Single<Double>.self, row) || !whileParsing, "\(text)")
        }
    }

    /// A struct of many fields, read in `Wide.order`, as a synthesized `init(from:)` reads its declared fields.
    struct Wide: Decodable, Equatable {
        struct Name: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue _: Int) { nil }
        }
        static let order = (0..<200).map { String(format: "f%03d", $0) }
        var values: [Double]
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Name.self)
            values = try Self.order.map { try container.decode(Double.self, forKey: Name(stringValue: $0)) }
        }
    }

    /// Wide rows find their fields by a hash of the keys' bytes (docs/models.md, "Wide rows"), whatever order the
    /// client sent them in, and still answer as Foundation does: the first of a repeated key, an escaped key, a
    /// missing one.
    @Test func wideRowsFindEachFieldAsFoundationDoes() {
        let names = Wide.order
        func row(_ order: [String], extra: String = "") -> String {
            "{" + order.map { #""\#($0)": \#(Double($0.dropFirst())! / 8)"# }.joined(separator: ", ") + extra + "}"
        }
        var generator = SystemRandomNumberGenerator()
        #expect(compare(Wide.self, row(names)) == true)
        #expect(compare(Wide.self, row(names.reversed())) == true)
        #expect(compare(Wide.self, row(names.shuffled(using: &generator))) == true)
        #expect(compare(Wide.self, row(names.shuffled(using: &generator), extra: #", "f007": -1, "f199": "late""#)) == true)
        #expect(compare(Wide.self, #"{"f\u0030\u0030\u0030": 7, "#.appending(row(names).dropFirst())) == true)
        // In the row's order but for two neighbours; and f001 repeated where it is looked for first, after f000: the
        // first f001, before f000, is Foundation's.
        var swapped = names
        swapped.swapAt(10, 11)
        #expect(compare(Wide.self, row(swapped)) == true)
        #expect(compare(Wide.self, #"{"f001": -1, "#.appending(row(names).dropFirst())) == true)
        #expect(compare(Wide.self, row(names.filter { $0 != "f150" })) == false)
        #expect(compare(Wide.self, row(names.map { $0 == "f150" ? "F150" : $0 })) == false)
    }

    @Test func deepNestingIsLeftToFoundation() {
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(compare(Single<JSON>.self, #"{"x": \#(deep)}"#) == false)
    }
}
