import AutoServeModel

/// A feature's bins, drawn from the reference rows: the reference's deciles for a numeric feature, or one bin per
/// value of the reference and one for values it never had (docs/operations.md, "Drift reports"). The report and the live
/// monitor both bin with it.
struct FeatureBins: Sendable {
    let kind: FeatureDrift.Kind
    /// Inner edges of a numeric feature's right-closed bins.
    let edges: [Double]
    /// A categorical feature's values, by bin; the last bin (one past them) takes unseen values.
    let categories: [String: Int]
    let labels: [String]

    /// Numeric when every value the reference has for `name` (nulls aside) is a number, and there is one.
    init(_ name: String, reference: [[String: JSON]]) {
        let values = reference.compactMap { $0[name] }.filter { $0 != .null }
        if !values.isEmpty, values.allSatisfy({ $0.double != nil }) {
            kind = .numeric
            edges = DriftStatistics.decileEdges(values.compactMap(\.double))
            categories = [:]
            labels = (0...edges.count).map { [edges] index in
                let low = index == 0 ? "−∞" : DriftReport.format(edges[index - 1])
                let high = index == edges.count ? "+∞" : DriftReport.format(edges[index])
                return "(\(low), \(high)]"
            }
        } else {
            kind = .categorical
            edges = []
            let sorted = Set(values.compactMap(DriftReport.category)).sorted()
            categories = Dictionary(uniqueKeysWithValues: sorted.enumerated().map { ($1, $0) })
            labels = sorted + ["(unseen)"]
        }
    }

    /// The bin of `value`, or `nil` when it is of another kind (a string for a numeric feature, an object).
    func bin(_ value: JSON) -> Int? {
        switch kind {
        case .numeric: value.double.map { DriftStatistics.bin($0, edges: edges) }
        case .categorical: DriftReport.category(value).map { categories[$0] ?? categories.count }
        }
    }

    /// How many of `rows` fall in each bin, and how many had a value of the feature's kind.
    func counts(_ name: String, in rows: [[String: JSON]]) -> (counts: [Int], present: Int) {
        var counts = [Int](repeating: 0, count: labels.count)
        var present = 0
        for row in rows {
            guard let value = row[name], let bin = bin(value) else { continue }
            counts[bin] += 1
            present += 1
        }
        return (counts, present)
    }
}
