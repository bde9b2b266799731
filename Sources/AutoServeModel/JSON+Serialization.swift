/// The one JSON writer of AutoServe: a plugin writes its outputs with it, and the server its bodies.
extension JSON {
    /// Appends the compact JSON text of this value, object keys sorted; `false` if it holds a number JSON cannot
    /// carry (NaN, ±inf).
    public func write(into bytes: inout [UInt8]) -> Bool {
        switch self {
        case .null:
            bytes.append(contentsOf: "null".utf8)
        case .bool(let value):
            bytes.append(contentsOf: (value ? "true" : "false").utf8)
        case .number(let value):
            guard value.isFinite else { return false }
            if value.rounded(.towardZero) == value, abs(value) < 1e15 {
                bytes.append(contentsOf: String(Int64(value)).utf8)
            } else {
                bytes.append(contentsOf: value.description.utf8)
            }
        case .string(let value):
            Self.writeString(value, into: &bytes)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { bytes.append(UInt8(ascii: ",")) }
                guard element.write(into: &bytes) else { return false }
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            return Self.writeObject(members, into: &bytes)
        }
        return true
    }

    /// Writes an object with its keys sorted, so that the same output always has the same bytes.
    public static func writeObject(_ members: [String: JSON], into bytes: inout [UInt8]) -> Bool {
        bytes.append(UInt8(ascii: "{"))
        for (position, member) in members.sorted(by: { $0.key < $1.key }).enumerated() {
            if position > 0 { bytes.append(UInt8(ascii: ",")) }
            writeString(member.key, into: &bytes)
            bytes.append(UInt8(ascii: ":"))
            guard member.value.write(into: &bytes) else { return false }
        }
        bytes.append(UInt8(ascii: "}"))
        return true
    }

    /// Appends `value` as a JSON string: quotes, and escapes for `"`, `\\` and the control characters. A string with
    /// nothing to escape (names, labels: nearly every one) is appended whole, not byte by byte.
    public static func writeString(_ value: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        let appended = value.utf8.withContiguousStorageIfAvailable { utf8 -> Bool in
            guard !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else { return false }
            bytes.append(contentsOf: utf8)
            return true
        }
        if appended == true {
            bytes.append(UInt8(ascii: "\""))
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): bytes.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): bytes.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): bytes.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): bytes.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: #"\u00"#.utf8)
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension JSON {
    /// The content of a JSON string (the bytes between its quotes) with its escapes decoded, surrogate pairs
    /// included; `nil` when an escape is invalid, a surrogate unpaired or the result not UTF-8. The SDK's decoder
    /// and the server's parser both read escaped strings with it.
    public static func unescape(_ content: UnsafeRawBufferPointer) -> String? {
        func hexQuad(at position: Int) -> UInt32? {
            position + 4 <= content.count ? JSON.hexQuad(content[position..<position + 4]) : nil
        }
        var unescaped: [UInt8] = []
        unescaped.reserveCapacity(content.count)
        var cursor = 0
        while cursor < content.count {
            let byte = content[cursor]
            guard byte == UInt8(ascii: "\\") else {
                unescaped.append(byte)
                cursor += 1
                continue
            }
            guard cursor + 1 < content.count else { return nil }
            let escaped = content[cursor + 1]
            cursor += 2
            switch escaped {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): unescaped.append(escaped)
            case UInt8(ascii: "b"): unescaped.append(0x08)
            case UInt8(ascii: "f"): unescaped.append(0x0C)
            case UInt8(ascii: "n"): unescaped.append(0x0A)
            case UInt8(ascii: "r"): unescaped.append(0x0D)
            case UInt8(ascii: "t"): unescaped.append(0x09)
            case UInt8(ascii: "u"):
                guard var scalar = hexQuad(at: cursor) else { return nil }
                cursor += 4
                if (0xD800..<0xDC00).contains(scalar) {
                    guard cursor + 6 <= content.count, content[cursor] == UInt8(ascii: "\\"), content[cursor + 1] == UInt8(ascii: "u"),
                        let low = hexQuad(at: cursor + 2), (0xDC00..<0xE000).contains(low)
                    else { return nil }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    cursor += 6
                }
                guard let unicode = Unicode.Scalar(scalar) else { return nil }
                unescaped.append(contentsOf: UTF8.encode(unicode)!)
            default:
                return nil
            }
        }
        return String(validating: unescaped, as: UTF8.self)
    }
}

extension JSON {
    /// The value of four hex digits (either case), as in `\u00e9`; `nil` if one is not a hex digit.
    static func hexQuad(_ digits: some Sequence<UInt8>) -> UInt32? {
        var value: UInt32 = 0
        for byte in digits {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }
}
