import Foundation
import Testing

@testable import AutoServeModel

struct JSONTests {
    @Test func accessorsReturnNilInsteadOfTrapping() {
        let value: JSON = ["a": [1, 2.5, "x", true, nil], "n": 3]
        #expect(value["a"]?[0]?.int == 1)
        #expect(value["a"]?[1]?.double == 2.5)
        #expect(value["a"]?[1]?.int == nil)
        #expect(value["a"]?[2]?.string == "x")
        #expect(value["a"]?[3]?.bool == true)
        #expect(value["a"]?[4] == .null)
        #expect(value["a"]?[5] == nil)
        #expect(value["a"]?[-1] == nil)
        #expect(value["missing"] == nil)
        #expect(value[0] == nil)
        #expect(value["n"]?["x"] == nil)
        #expect(value.object?.count == 2)
        #expect(value["a"]?.array?.count == 5)
        #expect(JSON.number(1e300).int == nil)
    }

    @Test func decodesAndEncodesEveryKindWithFoundation() throws {
        let text = #"{"b":true,"n":-1.5,"s":"hé\"","a":[1,null],"o":{"k":"v"}}"#
        let decoded = try JSONDecoder().decode(JSON.self, from: Data(text.utf8))
        #expect(decoded == ["b": true, "n": -1.5, "s": "hé\"", "a": [1, nil], "o": ["k": "v"]])
        let again = try JSONDecoder().decode(JSON.self, from: JSONEncoder().encode(decoded))
        #expect(again == decoded)
        let dictionary = try JSONDecoder().decode([String: JSON].self, from: Data(text.utf8))
        #expect(dictionary["o"]?["k"] == "v")
    }

    @Test func serializesCompactlyWithSortedKeys() {
        var bytes: [UInt8] = []
        #expect(JSON.writeObject(["z": 1, "a": [true, nil, 0.1, "q\"\n\u{1}"], "m": ["k": 2e20]], into: &bytes))
        #expect(String(decoding: bytes, as: UTF8.self) == #"{"a":[true,null,0.1,"q\"\n\u0001"],"m":{"k":2e+20},"z":1}"#)
        var nan: [UInt8] = []
        #expect(!JSON.writeObject(["x": .number(.nan)], into: &nan))
    }

    /// A string with nothing to escape is appended whole, any other byte by byte: both read back as the string.
    @Test func stringsReadBackAsWrittenWithOrWithoutEscapes() throws {
        let long = String(repeating: "wide_feature_", count: 5)
        let strings = ["", "f000", long, "hé ünïcødé 😀", "q\"", "back\\slash", "\u{1}\u{1f}\t\n\r", long + "\"", "\\" + long, long + "\u{7}", "\u{7f}"]
        for string in strings {
            var bytes: [UInt8] = []
            JSON.writeString(string, into: &bytes)
            #expect(try JSONDecoder().decode(String.self, from: Data(bytes)) == string, "\(String(decoding: bytes, as: UTF8.self))")
            let escapes = string.utf8.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
            #expect((bytes.count == string.utf8.count + 2) == !escapes, "plain strings are copied as they are")
        }
    }
}

struct PluginSupportTests {
    struct Row: Decodable {
        struct Inner: Decodable { var depth: Int }
        var name: String
        var inner: Inner
        var list: [Double]
    }

    func decodingMessage(_ json: String) -> String {
        do {
            let bytes = Array(json.utf8)
            _ = try bytes.withUnsafeBufferPointer { try _AutoServePlugin.decode(Row.self, from: $0) }
            return "decoded"
        } catch {
            return _AutoServePlugin.describeDecoding(error)
        }
    }

    @Test func decodingFailuresNameTheField() {
        #expect(decodingMessage(#"{"inner": {"depth": 1}, "list": []}"#) == #"missing field "name" in variables"#)
        #expect(decodingMessage(#"{"name": "a", "inner": {}, "list": []}"#) == #"missing field "inner.depth" in variables"#)
        #expect(decodingMessage(#"{"name": "a", "inner": {"depth": 1}, "list": [1, "x"]}"#).hasPrefix(#"field "list[1]" has the wrong type"#))
        #expect(decodingMessage(#"{"name": null, "inner": {"depth": 1}, "list": []}"#).contains(#""name""#))
        #expect(decodingMessage(#"{"name": "a", "inner": {"depth": 1}, "list": [1]}"#) == "decoded")
    }

    struct Output: Encodable { var score: Double }

    @Test func outputsMustEncodeToAnObject() throws {
        #expect(try _AutoServePlugin.encodeObject(Output(score: 0.5)).get() == Array(#"{"score":0.5}"#.utf8))
        #expect(try _AutoServePlugin.encodeObject(["a": JSON.string("b")]).get() == Array(#"{"a":"b"}"#.utf8))
        #expect(try _AutoServePlugin.encodeObject(JSON.object(["k": 1])).get() == Array(#"{"k":1}"#.utf8))
        for result in [_AutoServePlugin.encodeObject(3), _AutoServePlugin.encodeObject([1, 2]), _AutoServePlugin.encodeObject(JSON.string("x"))] {
            guard case .failure(let message) = result else {
                Issue.record("expected a failure")
                continue
            }
            #expect(message.text.contains("does not encode to a JSON object"))
        }
        guard case .failure(let nan) = _AutoServePlugin.encodeObject(["x": JSON.number(.infinity)]) else {
            Issue.record("expected a failure")
            return
        }
        #expect(nan.text.contains("NaN or infinity"))
    }

    struct Doubler {
        func transform_predict(_ variables: [String: JSON]) throws -> [String: JSON] {
            guard let x = variables["x"]?.double else { throw ModelError.invalidInput("x is required") }
            if x < 0 { throw CocoaError(.fileNoSuchFile) }
            return ["y": .number(x * 2)]
        }
    }

    /// The plugin side of the C ABI, called as the server calls it.
    @Test func predictAnswersWithAStatusAndAMallocedBuffer() throws {
        var error: UnsafeMutablePointer<CChar>?
        let instance = try #require(_AutoServePlugin.create(path: "/tmp", error: &error) { _ in Doubler() })
        defer { _AutoServePlugin.destroy(instance, as: Doubler.self) }
        func call(_ input: String) -> (Int32, String) {
            var output: UnsafeMutablePointer<UInt8>?
            var count = 0
            let status = Array(input.utf8).withUnsafeBufferPointer { buffer in
                _AutoServePlugin.predict(instance, as: Doubler.self, input: buffer.baseAddress, count: buffer.count, output: &output, outputCount: &count) {
                    model, variables in try model.transform_predict(variables)
                }
            }
            defer { free(output) }
            return (status, String(decoding: UnsafeBufferPointer(start: output, count: count), as: UTF8.self))
        }
        #expect(call(#"{"x": 2}"#) == (0, #"{"y":4}"#))
        #expect(call(#"{}"#) == (2, "x is required"))
        #expect(call(#"{"x": -1}"#).0 == 3)
        #expect(call(#"[1]"#).0 == 1)
        #expect(call("").0 == 2)
        let failing = _AutoServePlugin.create(path: "/tmp", error: &error) { _ -> Doubler in throw ModelError.invalidInput("no weights") }
        #expect(failing == nil)
        #expect(error.map { String(cString: $0) } == "init(path:) threw: no weights")
        free(error)
    }
}

/// A model's typed output is written without JSONEncoder when its values are the common ones; the bytes hold what
/// JSONEncoder (sorted keys) writes for it, and everything JSONEncoder treats its own way is left to JSONEncoder.
struct OutputEncoderTests {
    enum Level: String, Encodable { case low, high }
    enum Rank: Int, Encodable {
        case first = 1
        case second
    }

    struct Inner: Encodable, Equatable {
        var x: Double
        var tags: [String]
        var level: Level?
    }

    struct Wide: Encodable {
        var score: Double
        var count: Int
        var small: Int8 = -7
        var big: UInt64 = 1 << 53
        var negative: Int64 = -(1 << 53)
        var flag: Bool
        var name: String
        var missing: String?
        var present: String? = "here"
        var level: Level = .high
        var rank: Rank = .second
        var inner: Inner
        var list: [Inner]
        var matrix: [[Double]] = [[1, 2.5], [], [-0.0, 1e-300, 1.7976931348623157e308]]
        var byName: [String: Double] = ["b": 2, "a": 1]
        var byNumber: [Int: String] = [2: "two", 10: "ten"]
        var nested: [String: [Int?]] = ["k": [1, nil, 3]]
        var json: JSON = ["any": [1, "two", nil, true]]
        var text: String = "quote \" slash / back \\ line \n tab \t é 🙂 \u{0001}"
    }

    /// A custom `encode(to:)` with nested containers and explicit nils, as hand-written encoders do.
    struct Custom: Encodable {
        enum Keys: String, CodingKey { case a, b, c, d }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encodeNil(forKey: .a)
            var list = container.nestedUnkeyedContainer(forKey: .b)
            try list.encode(1)
            try list.encodeNil()
            var object = list.nestedContainer(keyedBy: Keys.self)
            try object.encode("x", forKey: .c)
            var inner = container.nestedContainer(keyedBy: Keys.self, forKey: .c)
            try inner.encode(true, forKey: .d)
            try container.encode(2.5, forKey: .d)
        }
    }

    struct WithFloat: Encodable { var f: Float = 0.1 }
    struct WithDate: Encodable { var d = Date(timeIntervalSinceReferenceDate: 12.5) }
    struct WithData: Encodable { var d = Data([1, 2, 3]) }
    struct WithURL: Encodable { var u = URL(string: "https://example.com/a?b=c")! }
    struct WithDecimal: Encodable { var d = Decimal(string: "1.25")! }
    struct WithHugeInteger: Encodable { var i: Int64 = (1 << 53) + 1 }
    struct WithNaN: Encodable { var x = Double.nan }
    class Base: Encodable { var a = 1 }
    final class Derived: Base {
        var b = 2
        enum Keys: CodingKey { case b }
        override func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try super.encode(to: container.superEncoder())
            try container.encode(b, forKey: .b)
        }
    }

    static func foundation<Value: Encodable>(_ value: Value) throws -> JSON {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try JSONDecoder().decode(JSON.self, from: encoder.encode(value))
    }

    static func ours<Value: Encodable>(_ value: Value) throws -> JSON {
        try JSONDecoder().decode(JSON.self, from: Data(try _AutoServePlugin.encodeObject(value).get()))
    }

    @Test func commonOutputsAreWrittenAsJSONEncoderWritesThem() throws {
        let inner = Inner(x: 0.1, tags: ["a", "b"], level: nil)
        let wide = Wide(
            score: 0.9231876623841209, count: 42, flag: true, name: "n", inner: inner,
            list: [inner, Inner(x: -3e-7, tags: [], level: .low)])
        #expect(OutputEncoder.json(of: wide) != nil, "a struct of common types is written without JSONEncoder")
        #expect(try Self.ours(wide) == Self.foundation(wide))
        #expect(OutputEncoder.json(of: Custom()) != nil)
        #expect(try Self.ours(Custom()) == Self.foundation(Custom()))
        // The bytes of a plain output are JSONEncoder's own.
        struct Small: Encodable {
            var probability: Double
            var label: String
        }
        let small = Small(probability: 0.25, label: "setosa")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(try _AutoServePlugin.encodeObject(small).get() == Array(try encoder.encode(small)))
    }

    @Test func whatJSONEncoderTreatsItsOwnWayIsLeftToIt() throws {
        #expect(OutputEncoder.json(of: WithFloat()) == nil)
        #expect(try Self.ours(WithFloat()) == Self.foundation(WithFloat()))
        #expect(OutputEncoder.json(of: WithDate()) == nil)
        #expect(try Self.ours(WithDate()) == Self.foundation(WithDate()))
        #expect(OutputEncoder.json(of: WithData()) == nil)
        #expect(try Self.ours(WithData()) == Self.foundation(WithData()))
        #expect(OutputEncoder.json(of: WithURL()) == nil)
        #expect(try Self.ours(WithURL()) == Self.foundation(WithURL()))
        #expect(OutputEncoder.json(of: WithDecimal()) == nil)
        #expect(try Self.ours(WithDecimal()) == Self.foundation(WithDecimal()))
        #expect(OutputEncoder.json(of: WithHugeInteger()) == nil)
        #expect(OutputEncoder.json(of: Derived()) == nil)
        #expect(try Self.ours(Derived()) == Self.foundation(Derived()))
        // NaN: JSONEncoder's error, as before.
        #expect(OutputEncoder.json(of: WithNaN()) == nil)
        guard case .failure(let message) = _AutoServePlugin.encodeObject(WithNaN()) else {
            Issue.record("NaN was encoded")
            return
        }
        #expect(message.text.contains("does not encode to JSON"))
    }
}
