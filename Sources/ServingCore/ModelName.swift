/// A model's name: the name of its folder and the last component of its route.
public struct ModelName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// Names of the routes `/all` and the index; a folder may not take them.
    public static let reserved: Set<String> = ["all"]

    /// Validates a folder name against `^[A-Za-z][A-Za-z0-9_-]{0,63}$`, refusing the reserved `all`.
    public init(validating name: String) throws(ModelNameError) {
        let bytes = Array(name.utf8)
        guard let first = bytes.first else { throw ModelNameError(name: name, reason: "it is empty") }
        guard bytes.count <= 64 else {
            throw ModelNameError(name: name, reason: "it is longer than 64 characters")
        }
        guard Self.isLetter(first) else {
            throw ModelNameError(name: name, reason: "it must start with a letter A–Z or a–z")
        }
        for byte in bytes.dropFirst() where !(Self.isLetter(byte) || Self.isDigit(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")) {
            throw ModelNameError(name: name, reason: "it may hold only letters, digits, '_' and '-'")
        }
        guard !Self.reserved.contains(name.lowercased()) else {
            throw ModelNameError(name: name, reason: "'\(name)' is reserved for the route that scores every model")
        }
        self.rawValue = name
    }

    public var description: String { rawValue }

    public static func < (lhs: ModelName, rhs: ModelName) -> Bool { lhs.rawValue < rhs.rawValue }

    static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
}

extension ModelName: Codable {
    /// A name read back (from a helper process's answer) is validated again.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            self = try ModelName(validating: text)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// A folder name that cannot be a model name, with the reason and how to fix it.
public struct ModelNameError: Error, Sendable, CustomStringConvertible {
    public let name: String
    public let reason: String

    public var description: String {
        "folder '\(name)' is not a valid model name: \(reason); rename it to match ^[A-Za-z][A-Za-z0-9_-]{0,63}$"
    }
}
