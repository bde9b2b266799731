import AutoServeModel

/// A model that explains its score: one feature raises it, one lowers it, one does nothing (the index page's chart).
struct Explained {
    init(path: String) {}

    func transform_predict(_ variables: [String: JSON]) throws -> [String: JSON] {
        let explanation = explain(variables)
        return ["score": .number(explanation.contributions.values.reduce(explanation.base, +))]
    }

    func explain(_ variables: [String: JSON]) -> Explanation {
        let size = variables["size"]?.double ?? 1
        return Explanation(base: 1, contributions: ["up": 0.5 * size, "down": -0.25 * size, "zero": 0])
    }
}
