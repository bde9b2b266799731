import Foundation

extension TreeModel {
    /// A row's variables as a tree model reads them (docs/models.md, "Wide rows"): the bytes of the request, parsed
    /// once and read feature by feature, each name matched by its bytes and each number parsed where it lies, with no
    /// dictionary and no string per variable. Where the shortcut decoder leaves the decision to `JSONDecoder`, the
    /// dictionary `JSONDecoder` decoded.
    public struct Row: Decodable {
        enum Storage {
            case tape(JSONTape)
            case dictionary([String: JSON])
        }

        let storage: Storage

        init(tape: JSONTape) {
            storage = .tape(tape)
        }

        init(dictionary: [String: JSON]) {
            storage = .dictionary(dictionary)
        }

        public init(from decoder: any Decoder) throws {
            storage = .dictionary(try [String: JSON](from: decoder))
        }
    }

    /// Scores one row: the answer `output` asks for, the same as `predict` of the row's variables as a dictionary.
    public func predict(_ row: Row) throws -> [String: JSON] {
        switch row.storage {
        case .dictionary(let variables): return try predict(variables)
        case .tape(let tape):
            if let features = try values(of: tape) { return predict(features: features) }
            return try predict(try Self.dictionary(of: tape))
        }
    }

    /// The row as `JSONDecoder` reads it, for a number only Foundation reads exactly: its reading of the whole row
    /// decides.
    static func dictionary(of tape: JSONTape) throws -> [String: JSON] {
        do {
            return try JSONDecoder().decode([String: JSON].self, from: Data(tape.bytes))
        } catch {
            throw TreeVariablesError(message: _AutoServePlugin.describeDecoding(error))
        }
    }

    /// The features of the row at the tape's root, as `values(of:)` reads them from its dictionary: the first of a
    /// repeated name counts, as in `JSONDecoder`'s dictionary; `nil` when a value is `JSONDecoder`'s to judge.
    func values(of tape: JSONTape) throws -> [Double]? {
        guard !tape.holdsNumbersForFoundation else { return nil }
        var values = [Double](repeating: .nan, count: features.count)
        var seen = [Bool](repeating: false, count: features.count)
        do {
            try tape.forEachMember(of: 0) { key, value in
                let position =
                    tape.keyHasEscapes(key)
                    ? featureIndex.position(of: try tape.string(at: key)) : tape.withKeyBytes(key) { featureIndex.position(ofBytes: $0) }
                guard let position, !seen[position] else { return }
                seen[position] = true
                if tape.node(value).kind == .number, !features[position].categorical {
                    values[position] = try tape.double(at: value, path: [])
                } else {
                    values[position] = try Self.value(try tape.json(at: value), of: features[position], refusingUnseen: refusesUnseenCategories)
                }
            }
        } catch is GaveUp {
            return nil
        }
        return values
    }
}
