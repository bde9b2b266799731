/// A JSON value: what a model reads from untyped variables and returns as output.
///
/// Models that do not want a typed `Variables` struct take `[String: JSON]` (or `JSON`) and return a
/// `[String: JSON]`; the accessors return `nil` instead of trapping, because a trap in a model kills the
/// process that serves it.
public enum JSON: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    /// The value under `key`; `nil` unless this is an object holding `key`.
    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    /// The element at `index`; `nil` unless this is an array holding `index`.
    public subscript(index: Int) -> JSON? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    /// The number, if this is one.
    public var double: Double? {
        guard case .number(let value) = self else { return nil }
        return value
    }

    /// The number as an `Int`, if this is a whole number that fits one.
    public var int: Int? {
        guard case .number(let value) = self, value.rounded(.towardZero) == value,
            value >= -9_223_372_036_854_775_808.0, value < 9_223_372_036_854_775_808.0
        else { return nil }
        return Int(value)
    }

    /// The string, if this is one.
    public var string: String? {
        guard case .string(let value) = self else { return nil }
        return value
    }

    /// The boolean, if this is one.
    public var bool: Bool? {
        guard case .bool(let value) = self else { return nil }
        return value
    }

    /// The elements, if this is an array.
    public var array: [JSON]? {
        guard case .array(let elements) = self else { return nil }
        return elements
    }

    /// The members, if this is an object.
    public var object: [String: JSON]? {
        guard case .object(let members) = self else { return nil }
        return members
    }
}
