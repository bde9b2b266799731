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

    /// Appends `value` as a JSON string: quotes, and escapes for `"`, `\\` and the control characters.
    public static func writeString(_ value: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
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
