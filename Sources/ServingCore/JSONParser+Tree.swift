public import AutoServeModel

extension JSONParser {
    /// Parses one value into a tree.
    mutating func parseValue() throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        guard let byte = peek() else { throw unexpected(expecting: "a value") }
        switch byte {
        case UInt8(ascii: "{"):
            var members: [String: JSONValue] = [:]
            try forEachMember { parser, key throws(JSONParseError) in
                let value = try parser.parseValue()
                // A repeated key: the first one counts, as on the request path.
                let name = parser.decodeString(key)
                if members[name] == nil { members[name] = value }
            }
            return .object(members)
        case UInt8(ascii: "["):
            var elements: [JSONValue] = []
            try forEachElement { parser throws(JSONParseError) in elements.append(try parser.parseValue()) }
            return .array(elements)
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try skipLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try skipLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try skipLiteral("null")
            return .null
        default:
            let range = try scanNumber()
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
            guard let value = Double(text) else { throw JSONParseError(reason: .unexpectedByte(byte, expecting: "a number"), offset: range.lowerBound) }
            return .number(value)
        }
    }

    /// Parses a string, decoding its escapes (surrogate pairs included).
    mutating func parseString() throws(JSONParseError) -> String {
        let start = index
        try skipString()
        return decodeString(start..<index)
    }

    /// Decodes a string token that `skipString` validated (quotes included): its escapes and surrogate pairs are
    /// whole, so the SDK's unescaping cannot refuse it.
    func decodeString(_ token: Range<Int>) -> String {
        let content = UnsafeRawBufferPointer(rebasing: bytes[(token.lowerBound + 1)..<(token.upperBound - 1)])
        guard content.contains(UInt8(ascii: "\\")) else { return String(decoding: content, as: UTF8.self) }
        return JSON.unescape(content) ?? String(decoding: content, as: UTF8.self)
    }
}

/// Why a document is not the JSON the server expects, with the byte offset where that shows.
public struct JSONParseError: Error, Sendable, CustomStringConvertible {
    public enum Reason: Sendable {
        case empty
        case truncated(expecting: String)
        case unexpectedByte(UInt8, expecting: String)
        case invalidEscape
        case unpairedSurrogate
        case invalidUTF8
        case numberOutOfRange(String)
        case controlCharacterInString
        case tooDeep
        case notAnObject
        case missingMember(String)
    }

    public var reason: Reason
    public var offset: Int

    public var description: String {
        switch reason {
        case .empty: "the document is empty"
        case .truncated(let expecting): "the document ends early at byte \(offset), expecting \(expecting)"
        case .unexpectedByte(let byte, let expecting): "unexpected \(Self.show(byte)) at byte \(offset), expecting \(expecting)"
        case .invalidEscape: "invalid escape sequence in a string at byte \(offset)"
        case .unpairedSurrogate: "a \\u escape at byte \(offset) is half of a surrogate pair; escape a character outside the BMP as two \\u escapes"
        case .invalidUTF8: "the bytes at \(offset) are not valid UTF-8; send the body as UTF-8"
        case .numberOutOfRange(let text): "the number \(text) at byte \(offset) is beyond the range of a double (about 1.8e308)"
        case .controlCharacterInString: "unescaped control character in a string at byte \(offset)"
        case .tooDeep: "values nested deeper than \(JSONParser.maximumDepth) levels at byte \(offset)"
        case .notAnObject: "the document is not a JSON object"
        case .missingMember(let key): "the object has no \"\(key)\" member"
        }
    }

    static func show(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
    }
}

/// Reading parts of a document `locateObjectMembers` validated, without building a tree (the Open Inference Protocol's
/// tensors are read so, docs/http-api.md, "Open Inference Protocol v2"). The document is valid, so these walks look only
/// at strings and brackets: several times faster than validating again.
extension JSONParser {
    /// Calls `body` with each member of the object at `range`: its key's token (quotes included) and its value.
    @inlinable public static func forEachMember(ofObjectAt range: Range<Int>, in bytes: UnsafeRawBufferPointer, _ body: (Range<Int>, ObjectMember) -> Void) {
        var parser = JSONParser(bytes)
        parser.index = range.lowerBound + 1
        while true {
            parser.skipWhitespace()
            guard parser.peek() == UInt8(ascii: "\"") else { return }
            let keyStart = parser.index
            parser.skipValidated()
            let key = keyStart..<parser.index
            parser.skipWhitespace()
            parser.index += 1  // the colon
            parser.skipWhitespace()
            let start = parser.index
            parser.skipValidated()
            body(key, ObjectMember(range: start..<parser.index, kind: ValueKind(firstByte: bytes[start])))
            parser.skipWhitespace()
            guard parser.peek() == UInt8(ascii: ",") else { return }
            parser.index += 1
        }
    }

    /// Calls `body` with each element of the array at `range`.
    @inlinable public static func forEachElement(ofArrayAt range: Range<Int>, in bytes: UnsafeRawBufferPointer, _ body: (ObjectMember) -> Void) {
        var parser = JSONParser(bytes)
        parser.index = range.lowerBound + 1
        parser.skipWhitespace()
        guard parser.peek() != UInt8(ascii: "]") else { return }
        while true {
            parser.skipWhitespace()
            let start = parser.index
            parser.skipValidated()
            body(ObjectMember(range: start..<parser.index, kind: ValueKind(firstByte: bytes[start])))
            parser.skipWhitespace()
            guard parser.peek() == UInt8(ascii: ",") else { return }
            parser.index += 1
        }
    }

    /// Moves past the value at `index` of a valid document: a string to its closing quote (past its escapes), a
    /// container to its closing bracket (past the strings inside), a number or literal to the next delimiter.
    @inlinable mutating func skipValidated() {
        let end = bytes.count
        var position = index
        var depth = 0
        repeat {
            guard position < end else { break }
            switch bytes[position] {
            case UInt8(ascii: "\""):
                position += 1
                while position < end {
                    // Eight bytes at a time up to a quote or a backslash.
                    while position + 8 <= end {
                        let stops = Self.quotesAndBackslashes(in: word(at: position))
                        if stops != 0 {
                            position += stops.trailingZeroBitCount >> 3
                            break
                        }
                        position += 8
                    }
                    guard position < end else { break }
                    let byte = bytes[position]
                    position += byte == UInt8(ascii: "\\") ? 2 : 1
                    if byte == UInt8(ascii: "\"") { break }
                }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                position += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                position += 1
            default:
                position += 1
                if depth == 0 {
                    while position < end {
                        switch bytes[position] {
                        case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x0A, 0x0D, 0x09: break
                        default:
                            position += 1
                            continue
                        }
                        break
                    }
                }
            }
        } while depth > 0
        index = position
    }

    /// The text of the string token at `token` (quotes included), its escapes decoded.
    public static func string(_ token: Range<Int>, in bytes: UnsafeRawBufferPointer) -> String {
        JSONParser(bytes).decodeString(token)
    }

    /// Whether the string token at `token` holds exactly `key`.
    public static func string(_ token: Range<Int>, in bytes: UnsafeRawBufferPointer, equals key: [UInt8]) -> Bool {
        JSONParser(bytes).stringEquals(token, key)
    }

    /// The number the token at `token` holds, as the tree's `JSONValue.number` holds it.
    public static func number(_ token: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Double {
        Double(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[token]), as: UTF8.self)) ?? .nan
    }

    /// The value at `range` as a tree.
    public static func value(at range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> JSONValue {
        var parser = JSONParser(bytes)
        parser.index = range.lowerBound
        return (try? parser.parseValue()) ?? .null
    }
}
