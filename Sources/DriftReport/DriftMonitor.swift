public import AutoServeModel
public import ServingCore
import Synchronization

/// Live drift of one model version (docs/operations.md, "Live drift in /metrics"): the last `window` rows it scored, compared
/// with the reference sample its folder carries (`model.yaml`: `drift: {reference: …, window: …}`).
///
/// A request only appends its `variables` bytes to a ring under a lock (no parsing); `measure()`, called every few
/// seconds off the request path, parses the window and computes each feature's PSI against the reference's bins
/// and the share of rows that lack it.
public final class DriftMonitor: DriftObserving {
    /// The most features exported per model: their names become label values.
    public static let maximumFeatures = 100

    /// One feature's reference bins and the reference's share in each.
    struct Feature: Sendable {
        var name: String
        var bins: FeatureBins
        var referenceShares: [Double]
    }

    let features: [Feature]
    public let window: Int
    /// Features of the reference beyond `maximumFeatures`, not exported.
    public let omittedFeatures: Int
    private let ring: Mutex<(rows: [[UInt8]], next: Int)>

    public init(reference: [[String: JSON]], window: Int) {
        self.window = window
        let names = Set(reference.flatMap(\.keys)).sorted()
        omittedFeatures = max(0, names.count - Self.maximumFeatures)
        features = names.prefix(Self.maximumFeatures).map { name in
            let bins = FeatureBins(name, reference: reference)
            return Feature(name: name, bins: bins, referenceShares: DriftStatistics.shares(bins.counts(name, in: reference).counts))
        }
        ring = Mutex(([], 0))
    }

    /// Keeps a row's `variables` (as received) in the window; the oldest row leaves once it is full.
    public func observe(_ variables: [UInt8]) {
        ring.withLock { ring in
            if ring.rows.count < window {
                ring.rows.append(variables)
            } else {
                ring.rows[ring.next] = variables
                ring.next = (ring.next + 1) % window
            }
        }
    }

    /// Each feature's PSI against the reference, and the share of the window's rows without it (or with a value
    /// of another kind); empty while the window is.
    public func measure() -> (rows: Int, psi: [String: Double], missing: [String: Double]) {
        let rows = ring.withLock { $0.rows }.compactMap { try? JSONParser.parse($0).object }
        guard !rows.isEmpty else { return (0, [:], [:]) }
        var psi: [String: Double] = [:]
        var missing: [String: Double] = [:]
        for feature in features {
            let (counts, present) = feature.bins.counts(feature.name, in: rows)
            missing[feature.name] = Double(rows.count - present) / Double(rows.count)
            if present > 0 { psi[feature.name] = DriftStatistics.psi(reference: feature.referenceShares, current: DriftStatistics.shares(counts)) }
        }
        return (rows.count, psi, missing)
    }
}
