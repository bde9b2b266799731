import AutoServeModel
import Foundation

/// A churn-risk scorecard over untyped variables: optional fields fall back to defaults.
struct ChurnRisk {
    /// What the model answers: an `Encodable` struct, encoded as a JSON object.
    struct Score: Encodable {
        var churn_probability: Double
        var risk: String
        var reasons: [String]
    }

    /// The scorecard's log-odds with none of the risk factors.
    static let base = -1.2

    init(path: String) {}

    /// Each variable's points in log-odds (0 when its risk factor is absent), with the reason it gives.
    func points(_ variables: [String: JSON]) throws -> [(variable: String, points: Double, reason: String?)] {
        guard let tenure = variables["tenure_months"]?.double else {
            throw ModelError.invalidInput("tenure_months is required: the number of months the customer has stayed")
        }
        guard tenure >= 0 else { throw ModelError.invalidInput("tenure_months must not be negative") }
        let charges = variables["monthly_charges"]?.double ?? 50
        let contract = variables["contract"]?.string ?? "month-to-month"
        let supportCalls = variables["support_calls"]?.int ?? 0
        return [
            ("tenure_months", tenure < 12 ? 1.1 : 0, tenure < 12 ? "short tenure" : nil),
            ("monthly_charges", charges > 80 ? 0.6 : 0, charges > 80 ? "high monthly charges" : nil),
            ("contract", contract == "month-to-month" ? 0.9 : 0, contract == "month-to-month" ? "month-to-month contract" : nil),
            ("support_calls", supportCalls >= 3 ? 0.8 : 0, supportCalls >= 3 ? "\(supportCalls) support calls" : nil),
        ]
    }

    func transform_predict(_ variables: [String: JSON]) throws -> Score {
        let points = try points(variables)
        let logit = points.reduce(Self.base) { $0 + $1.points }
        let probability = 1 / (1 + exp(-logit))
        let rounded = (probability * 1000).rounded() / 1000
        return Score(churn_probability: rounded, risk: rounded >= 0.5 ? "high" : rounded >= 0.25 ? "medium" : "low", reasons: points.compactMap(\.reason))
    }

    /// Why the customer scored as they did: the scorecard's points, which add up to the log-odds of churn.
    func explain(_ variables: [String: JSON]) throws -> Explanation {
        let points = try points(variables)
        return Explanation(base: Self.base, contributions: Dictionary(uniqueKeysWithValues: points.map { ($0.variable, $0.points) }))
    }
}
