import AutoServeModel
import Foundation

/// Multinomial logistic regression on the four iris measurements (fitted with scikit-learn).
struct Iris {
    /// The row a client sends: every field is required, and a missing one is a 400 naming it.
    struct Variables: Decodable {
        var sepal_length: Double
        var sepal_width: Double
        var petal_length: Double
        var petal_width: Double
    }

    struct Weights: Decodable {
        var classes: [String]
        var coefficients: [[Double]]
        var intercepts: [Double]
    }

    let weights: Weights

    /// Loads the fitted coefficients once per version, from this version's read-only folder.
    init(path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path + "/weights.json"))
        weights = try JSONDecoder().decode(Weights.self, from: data)
        guard weights.coefficients.count == weights.classes.count, weights.intercepts.count == weights.classes.count,
            weights.coefficients.allSatisfy({ $0.count == 4 })
        else {
            throw ModelError.invalidInput("weights.json must hold one intercept and four coefficients per class")
        }
    }

    func transform_predict(_ variables: Variables) throws -> [String: JSON] {
        let row = [variables.sepal_length, variables.sepal_width, variables.petal_length, variables.petal_width]
        guard row.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw ModelError.invalidInput("measurements must be non-negative centimetres")
        }
        let scores = zip(weights.coefficients, weights.intercepts).map { coefficients, intercept in
            zip(coefficients, row).reduce(intercept) { $0 + $1.0 * $1.1 }
        }
        let largest = scores.max() ?? 0
        let exponentials = scores.map { exp($0 - largest) }
        let total = exponentials.reduce(0, +)
        var best = 0
        for index in exponentials.indices where exponentials[index] > exponentials[best] { best = index }
        return [
            "iris_class": .string(weights.classes[best]),
            "iris_probability": .number((exponentials[best] / total * 10_000).rounded() / 10_000),
        ]
    }
}
