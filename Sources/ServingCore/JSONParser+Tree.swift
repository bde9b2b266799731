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

    /// Decodes a string token that `skipString` validated (quotes included).
    func decodeString(_ token: Range<Int>) -> String {
        let content = UnsafeRawBufferPointer(rebasing: bytes[(token.lowerBound + 1)..<(token.upperBound - 1)])
        guard content.contains(UInt8(ascii: "\\")) else { return String(decoding: content, as: UTF8.self) }
        var scalars = String.UnicodeScalarView()
        var utf8: [UInt8] = []
        var position = 0
        func flush() {
            scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars)
            utf8.removeAll(keepingCapacity: true)
        }
        while position < content.count {
            let byte = content[position]
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                position += 1
                continue
            }
            let escape = content[position + 1]
            position += 2
            switch escape {
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var code = Self.hex4(content, position)
                position += 4
                if (0xD800..<0xDC00).contains(code), position + 6 <= content.count, content[position] == UInt8(ascii: "\\"),
                    content[position + 1] == UInt8(ascii: "u"), (2..<6).allSatisfy({ Self.hexValue(content[position + $0]) != nil })
                {
                    let low = Self.hex4(content, position + 2)
                    if (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        position += 6
                    }
                }
                flush()
                scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: utf8.append(escape)
            }
        }
        flush()
        return String(scalars)
    }

    static func hex4(_ content: UnsafeRawBufferPointer, _ position: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 << 4 | (hexValue(content[position + $1]) ?? 0) }
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
