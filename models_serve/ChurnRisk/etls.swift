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

    init(path: String) {}

    func transform_predict(_ variables: [String: JSON]) throws -> Score {
        guard let tenure = variables["tenure_months"]?.double else {
            throw ModelError.invalidInput("tenure_months is required: the number of months the customer has stayed")
        }
        guard tenure >= 0 else { throw ModelError.invalidInput("tenure_months must not be negative") }
        let charges = variables["monthly_charges"]?.double ?? 50
        let contract = variables["contract"]?.string ?? "month-to-month"
        let supportCalls = variables["support_calls"]?.int ?? 0

        var logit = -1.2
        var reasons: [String] = []
        if tenure < 12 {
            logit += 1.1
            reasons.append("short tenure")
        }
        if charges > 80 {
            logit += 0.6
            reasons.append("high monthly charges")
        }
        if contract == "month-to-month" {
            logit += 0.9
            reasons.append("month-to-month contract")
        }
        if supportCalls >= 3 {
            logit += 0.8
            reasons.append("\(supportCalls) support calls")
        }
        let probability = 1 / (1 + exp(-logit))
        let rounded = (probability * 1000).rounded() / 1000
        return Score(churn_probability: rounded, risk: rounded >= 0.5 ? "high" : rounded >= 0.25 ? "medium" : "low", reasons: reasons)
    }
}
