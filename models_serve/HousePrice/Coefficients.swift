import Foundation

/// A linear model in log-price space, as exported by the training notebook.
struct Coefficients: Decodable {
    var intercept: Double
    var weights: [Double]

    func predict(_ features: [Double]) -> Double {
        let logPrice = zip(weights, features).reduce(intercept) { $0 + $1.0 * $1.1 }
        return exp(logPrice)
    }
}
