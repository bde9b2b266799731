/// A version's live drift (docs/operations.md, "Live drift in /metrics"): the frontend shows it each row it scores, and `/metrics` asks for the
/// figures. The manager carries it without knowing how it is measured (`DriftReport.DriftMonitor`).
public protocol DriftObserving: Sendable {
    /// Counts one row's variables (the request's JSON object) into the current window.
    func observe(_ variables: [UInt8])
    /// The rows in the window, and each feature's PSI against the reference and share of missing values.
    func measure() -> (rows: Int, psi: [String: Double], missing: [String: Double])
}
