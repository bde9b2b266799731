/// Why a row scored as it did (docs/explanations.md): a base value and each feature's contribution, which add up to
/// the model's score (for a classifier, its raw score: log-odds, not the probability).
///
/// A Swift model explains its scores by declaring `func explain(_ variables: Variables) -> Explanation` (it may
/// throw) beside `transform_predict`; `{"variables": {...}, "explain": true}` then answers the output and the
/// explanation together.
public struct Explanation: Sendable, Hashable {
    /// The score of a row about which nothing is known: the expected value of the model's score.
    public var base: Double
    /// Each feature's share of the difference between this row's score and `base`.
    public var contributions: [String: Double]

    public init(base: Double, contributions: [String: Double]) {
        self.base = base
        self.contributions = contributions
    }

    /// The `_explanation` object: `base`, `contributions`, `top` (the `top` features with the largest contribution in
    /// magnitude, largest first, as `[feature, contribution]`; ties by name; a contribution of 0 moved nothing and is
    /// left out) and `reasons` (the text a person reads for each of them: `names`' text, or the feature's name).
    func json(top: Int, names: [String: String]) -> JSON {
        let largest = contributions.filter { $0.value != 0 }.sorted { left, right in
            abs(left.value) != abs(right.value) ? abs(left.value) > abs(right.value) : left.key < right.key
        }.prefix(max(top, 0))
        return .object([
            "base": .number(base),
            "contributions": .object(contributions.mapValues(JSON.number)),
            "top": .array(largest.map { .array([.string($0.key), .number($0.value)]) }),
            "reasons": .array(largest.map { .string(names[$0.key] ?? $0.key) }),
        ])
    }
}

/// A model's explanation of one row: one, or one per class of a multiclass model (keyed by its name).
public enum _Explained: Sendable {
    case single(Explanation)
    case perClass([(name: String, explanation: Explanation)])

    func json(top: Int, names: [String: String]) -> JSON {
        switch self {
        case .single(let explanation): explanation.json(top: top, names: names)
        case .perClass(let classes):
            .object(Dictionary(classes.map { ($0.name, $0.explanation.json(top: top, names: names)) }, uniquingKeysWith: { first, _ in first }))
        }
    }
}

extension TreeModel {
    /// Scores one row and explains the score (docs/explanations.md, "Tree models"): the answer `output` asks for, and
    /// the exact SHAP contributions in raw-score space (per class for a multiclass model). The row's variables are read
    /// once for both.
    public func predictExplained(_ row: Row) throws -> ([String: JSON], _Explained) {
        if let refusal = explanationRefusal { throw _AutoServePlugin.ExplainUnsupported(message: refusal) }
        let features: [Double]
        switch row.storage {
        case .dictionary(let variables): features = try values(of: variables)
        case .tape(let tape):
            if let read = try values(of: tape) {
                features = read
            } else {
                return try predictExplained(Row(dictionary: try Self.dictionary(of: tape)))
            }
        }
        let contributions = contributions(features)
        let names = self.features.map(\.name)
        let explanations = contributions.map { values in
            Explanation(base: values[values.count - 1], contributions: Dictionary(uniqueKeysWithValues: zip(names, values)))
        }
        if case .multiclass = task { return (predict(features: features), .perClass(Array(zip(classNames, explanations)))) }
        return (predict(features: features), .single(explanations[0]))
    }
}
