public import AutoServeModel

extension JSON {
    /// Compact JSON text with sorted keys.
    public var jsonText: String { String(decoding: jsonBytes, as: UTF8.self) }

    /// Compact JSON bytes with sorted keys; a number JSON cannot carry (NaN, ±inf, which no parsed value holds)
    /// is written as `null`.
    public var jsonBytes: [UInt8] {
        var bytes: [UInt8] = []
        if !write(into: &bytes) {
            bytes.removeAll()
            _ = Self.replacingNonFinite(self).write(into: &bytes)
        }
        return bytes
    }

    static func replacingNonFinite(_ value: JSON) -> JSON {
        switch value {
        case .number(let number) where !number.isFinite: .null
        case .array(let elements): .array(elements.map(replacingNonFinite))
        case .object(let members): .object(members.mapValues(replacingNonFinite))
        default: value
        }
    }

    /// `value` as a quoted JSON string.
    public static func quoted(_ value: String) -> String {
        var bytes: [UInt8] = []
        writeString(value, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}
