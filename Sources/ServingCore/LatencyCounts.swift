import Synchronization

/// A model's requests and their latency since the server started, whatever the version (docs/http-api.md, "The index as a
/// page"): counts per bucket of `Metrics.latencyBuckets`, from which the page reads p50 and p99 as Prometheus's
/// `histogram_quantile` would, by linear interpolation inside the bucket.
public final class LatencyCounts: Sendable {
    /// One slot per bucket of `Metrics.latencyBuckets` (16), then one for the requests slower than the last bound;
    /// atomics, so that the requests of every event loop count without a lock.
    private let counts = InlineArray<17, Atomic<Int>> { _ in Atomic(0) }

    public init() {
        precondition(Metrics.latencyBuckets.count + 1 == counts.count, "one slot per latency bucket and one past them")
    }

    public func record(_ seconds: Double) {
        let bucket = Metrics.latencyBuckets.firstIndex { seconds <= $0 } ?? Metrics.latencyBuckets.count
        counts[bucket].wrappingAdd(1, ordering: .relaxed)
    }

    /// The requests counted, and the latency below which `quantile` of them fell (`nil` before any request).
    public func summary(_ quantiles: [Double]) -> (count: Int, values: [Double?]) {
        let counts = (0..<self.counts.count).map { self.counts[$0].load(ordering: .relaxed) }
        let total = counts.reduce(0, +)
        return (total, quantiles.map { Self.quantile($0, counts: counts, total: total) })
    }

    static func quantile(_ quantile: Double, counts: [Int], total: Int) -> Double? {
        guard total > 0 else { return nil }
        let rank = quantile * Double(total)
        var below = 0
        for (bucket, count) in counts.enumerated() {
            if Double(below + count) >= rank, count > 0 {
                // Past the last bound the value is only known to exceed it.
                guard bucket < Metrics.latencyBuckets.count else { return Metrics.latencyBuckets.last }
                let lower = bucket == 0 ? 0 : Metrics.latencyBuckets[bucket - 1]
                let upper = Metrics.latencyBuckets[bucket]
                return lower + (upper - lower) * (rank - Double(below)) / Double(count)
            }
            below += count
        }
        return Metrics.latencyBuckets.last
    }
}

extension Metrics {
    /// The counts of `model`'s requests since start, shared by all its versions.
    public func latencyCounts(_ model: String) -> LatencyCounts {
        latencies.withLock { latencies in
            if let counts = latencies[model] { return counts }
            let counts = LatencyCounts()
            latencies[model] = counts
            return counts
        }
    }

    /// Those counts if `model` has had any request.
    public func existingLatencyCounts(_ model: String) -> LatencyCounts? {
        latencies.withLock { $0[model] }
    }
}
