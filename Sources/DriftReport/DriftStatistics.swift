import Foundation

/// The statistics of a drift report, as docs/operations.md's "Drift reports" defines them.
public enum DriftStatistics {
    /// What an empty bin's share becomes in the PSI, so that its logarithm is finite.
    public static let epsilon = 1e-4
    /// PSI below this is stable; up to `driftedAbove` moderate; above it drifted.
    public static let stableBelow = 0.1
    public static let driftedAbove = 0.25

    /// The reference's deciles (linear interpolation between order statistics, as numpy's default `quantile`),
    /// without repeats: the inner edges of the numeric bins.
    public static func decileEdges(_ reference: [Double]) -> [Double] {
        let sorted = reference.sorted()
        guard !sorted.isEmpty else { return [] }
        var edges: [Double] = []
        for decile in 1...9 {
            let position = Double(decile) / 10 * Double(sorted.count - 1)
            let lower = Int(position.rounded(.down))
            let upper = min(lower + 1, sorted.count - 1)
            let value = sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
            if edges.last != value { edges.append(value) }
        }
        return edges
    }

    /// The bin of `value` among `edges`: bins are right-closed, `(edges[i-1], edges[i]]`, the first from −∞ and the
    /// last to +∞ (numpy's `searchsorted(edges, value, side="left")`).
    public static func bin(_ value: Double, edges: [Double]) -> Int {
        var low = 0
        var high = edges.count
        while low < high {
            let middle = (low + high) / 2
            if edges[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Each bin's share of the values; an empty bin counts as `epsilon`.
    public static func shares(_ counts: [Int]) -> [Double] {
        let total = Double(counts.reduce(0, +))
        return counts.map { total == 0 || $0 == 0 ? epsilon : Double($0) / total }
    }

    /// The Population Stability Index of two distributions over the same bins: Σ (current − reference) · ln(current / reference).
    public static func psi(reference: [Double], current: [Double]) -> Double {
        zip(reference, current).reduce(0) { total, pair in total + (pair.1 - pair.0) * log(pair.1 / pair.0) }
    }

    /// The two-sample Kolmogorov–Smirnov statistic (the largest distance between the two empirical distribution
    /// functions) and its two-sided p-value from Kolmogorov's limiting distribution at √(nm/(n+m))·D.
    public static func kolmogorovSmirnov(_ first: [Double], _ second: [Double]) -> (statistic: Double, pValue: Double) {
        let a = first.sorted()
        let b = second.sorted()
        guard !a.isEmpty, !b.isEmpty else { return (0, 1) }
        var (i, j) = (0, 0)
        var distance = 0.0
        while i < a.count, j < b.count {
            let value = min(a[i], b[j])
            while i < a.count, a[i] == value { i += 1 }
            while j < b.count, b[j] == value { j += 1 }
            distance = max(distance, abs(Double(i) / Double(a.count) - Double(j) / Double(b.count)))
        }
        let n = Double(a.count)
        let m = Double(b.count)
        return (distance, kolmogorovSurvival((n * m / (n + m)).squareRoot() * distance))
    }

    /// P(K > λ) for Kolmogorov's distribution (scipy's `kstwobign.sf`): the alternating series for λ ≥ 1, the
    /// Jacobi theta form for smaller λ, where the first converges slowly.
    public static func kolmogorovSurvival(_ lambda: Double) -> Double {
        guard lambda > 0 else { return 1 }
        if lambda < 1 {
            var sum = 0.0
            for k in 1...20 {
                let odd = Double(2 * k - 1)
                sum += exp(-odd * odd * Double.pi * Double.pi / (8 * lambda * lambda))
            }
            return 1 - (2 * Double.pi).squareRoot() / lambda * sum
        }
        var sum = 0.0
        for k in 1...100 {
            let term = exp(-2 * Double(k * k) * lambda * lambda)
            sum += (k % 2 == 1 ? term : -term)
            if term < 1e-18 { break }
        }
        return min(1, max(0, 2 * sum))
    }
}
