import Testing

@testable import ServingCore

/// The p50 and p99 of the index page: read from bucket counts as Prometheus's `histogram_quantile` reads them.
struct LatencyCountsTests {
    @Test func quantilesInterpolateInsideTheirBucket() {
        let counts = LatencyCounts()
        #expect(counts.summary([0.5]).count == 0 && counts.summary([0.5]).values == [nil])
        // 90 requests in (0.5 ms, 1 ms], 10 in (5 ms, 10 ms].
        for _ in 0..<90 { counts.record(0.0008) }
        for _ in 0..<10 { counts.record(0.007) }
        let summary = counts.summary([0.5, 0.99])
        #expect(summary.count == 100)
        // Rank 50 of the 90 in (0.0005, 0.001]: 0.0005 + 0.0005 * 50 / 90.
        #expect(abs(summary.values[0]! - (0.0005 + 0.0005 * 50 / 90)) < 1e-12)
        // Rank 99: the 9th of the 10 in (0.005, 0.01].
        #expect(abs(summary.values[1]! - (0.005 + 0.005 * 9 / 10)) < 1e-12)
        // Slower than the last bound: only known to exceed it.
        let slow = LatencyCounts()
        slow.record(30)
        #expect(slow.summary([0.99]).values == [10])
    }
}
