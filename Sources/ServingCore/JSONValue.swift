public import AutoServeModel

/// The server's JSON values (manifest examples, the outputs checked against them, the pieces of its bodies) are
/// the SDK's `JSON`: one type and one writer on both sides of the plugin boundary, though only JSON bytes cross it.
public typealias JSONValue = JSON

extension JSON {
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
