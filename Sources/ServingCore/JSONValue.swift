/// A JSON value on the server's side of the plugin boundary: manifest examples, outputs checked against
/// them, and the pieces of the index.
///
/// The model SDK has its own `JSON` type; no Swift type crosses the boundary, only JSON bytes.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    /// Whether every member of `expected` is in this value: objects by subset, arrays element-wise,
    /// numbers within a relative 1e-9 so that a manifest can spell a float as it prints.
    public func contains(_ expected: JSONValue) -> Bool {
        switch (self, expected) {
        case (.object(let actual), .object(let wanted)):
            return wanted.allSatisfy { key, value in actual[key]?.contains(value) ?? false }
        case (.array(let actual), .array(let wanted)):
            return actual.count == wanted.count && zip(actual, wanted).allSatisfy { $0.contains($1) }
        case (.number(let actual), .number(let wanted)):
            return abs(actual - wanted) <= 1e-9 * max(1, abs(actual), abs(wanted))
        default:
            return self == expected
        }
    }

    /// The first member of `expected` this value does not hold, as `path: expected X, got Y`.
    public func mismatch(against expected: JSONValue, path: String = "") -> String? {
        if case .object(let actual) = self, case .object(let wanted) = expected {
            for key in wanted.keys.sorted() {
                let childPath = path.isEmpty ? key : "\(path).\(key)"
                guard let value = actual[key] else { return "\(childPath): expected \(wanted[key]!.jsonText), got nothing" }
                if let found = value.mismatch(against: wanted[key]!, path: childPath) { return found }
            }
            return nil
        }
        return contains(expected) ? nil : "\(path.isEmpty ? "output" : path): expected \(expected.jsonText), got \(jsonText)"
    }
}
