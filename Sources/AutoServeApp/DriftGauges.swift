import DriftReport
import ModelManager
import ServiceLifecycle
import ServingCore

/// Publishes each model's live drift (docs/operations.md, "Live drift in /metrics") every few seconds, off the request path:
/// `autoserve_feature_psi{model,feature}` and `autoserve_feature_missing_ratio{model,feature}` for every version
/// serving with a reference sample. A model without rows in its window yet, or gone, has no series.
struct DriftGauges: Service {
    let manager: ModelManager
    let metrics: Metrics
    var interval: Duration = .seconds(5)

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            publish()
            try? await Task.sleep(for: interval)
            if Task.isCancelled { return }
        }
    }

    func publish() {
        var psi: [[String]: Double] = [:]
        var missing: [[String]: Double] = [:]
        for version in manager.snapshot().servingVersions {
            guard let drift = version.drift else { continue }
            let measured = drift.measure()
            for (feature, value) in measured.psi { psi[[version.name.rawValue, feature]] = value }
            for (feature, value) in measured.missing { missing[[version.name.rawValue, feature]] = value }
        }
        metrics.replaceGauge("autoserve_feature_psi", with: psi)
        metrics.replaceGauge("autoserve_feature_missing_ratio", with: missing)
    }
}
