public import AutoServeModel
import Foundation

/// How one feature moved between the reference rows and the current ones.
public struct FeatureDrift: Sendable {
    public enum Kind: String, Sendable {
        case numeric, categorical
    }

    public enum Verdict: String, Sendable {
        case stable, moderate, drifted
    }

    /// One bin of the PSI: its label and each side's share (an empty bin's is `DriftStatistics.epsilon`).
    public struct Bin: Sendable {
        public var label: String
        public var reference: Double
        public var current: Double
    }

    public var name: String
    public var kind: Kind
    public var psi: Double
    /// The Kolmogorov–Smirnov statistic and p-value, for numeric features.
    public var ks: (statistic: Double, pValue: Double)?
    public var bins: [Bin]
    /// Rows with a value of the feature's kind, per side.
    public var rows: (reference: Int, current: Int)
    /// Rows without the feature, or with a value of another kind, per side.
    public var skipped: (reference: Int, current: Int)

    public var verdict: Verdict {
        psi < DriftStatistics.stableBelow ? .stable : psi > DriftStatistics.driftedAbove ? .drifted : .moderate
    }
}

/// `autoserve drift`: every feature of the reference rows, compared with the current rows (docs/operations.md, "Drift reports").
public struct DriftReport: Sendable {
    public var features: [FeatureDrift]
    /// Features that only the current rows have.
    public var newFeatures: [String]
    public var referenceRows: Int
    public var currentRows: Int

    public var drifted: [FeatureDrift] { features.filter { $0.verdict == .drifted } }

    /// Compares `current` with `reference`, feature by feature, sorted by PSI (largest first).
    public init(reference: [[String: JSON]], current: [[String: JSON]]) {
        referenceRows = reference.count
        currentRows = current.count
        let names = Set(reference.flatMap(\.keys))
        newFeatures = Set(current.flatMap(\.keys)).subtracting(names).sorted()
        features = names.sorted().map { Self.compare($0, reference: reference, current: current) }
        features.sort { $0.psi > $1.psi || ($0.psi == $1.psi && $0.name < $1.name) }
    }

    static func compare(_ name: String, reference: [[String: JSON]], current: [[String: JSON]]) -> FeatureDrift {
        let bins = FeatureBins(name, reference: reference)
        let (countsA, presentA) = bins.counts(name, in: reference)
        let (countsB, presentB) = bins.counts(name, in: current)
        let sharesA = DriftStatistics.shares(countsA)
        let sharesB = DriftStatistics.shares(countsB)
        let ks =
            bins.kind == .numeric ? DriftStatistics.kolmogorovSmirnov(reference.compactMap { $0[name]?.double }, current.compactMap { $0[name]?.double }) : nil
        return FeatureDrift(
            name: name, kind: bins.kind, psi: DriftStatistics.psi(reference: sharesA, current: sharesB), ks: ks,
            bins: zip(bins.labels, zip(sharesA, sharesB)).map { FeatureDrift.Bin(label: $0, reference: $1.0, current: $1.1) },
            rows: (presentA, presentB), skipped: (reference.count - presentA, current.count - presentB))
    }

    /// A categorical value: strings and booleans as they are, numbers as written; objects and arrays are not one.
    static func category(_ value: JSON) -> String? {
        switch value {
        case .string(let text): text
        case .bool(let flag): String(flag)
        case .number(let number): format(number)
        default: nil
        }
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(format: "%.4g", value)
    }

    // MARK: - Output

    /// The table `autoserve drift` prints.
    public var table: String {
        var lines = [
            "feature".padding(toLength: 28, withPad: " ", startingAt: 0) + "kind         PSI  verdict     KS D   p-value   rows ref/cur  skipped ref/cur"
        ]
        for feature in features {
            let ks = feature.ks.map { String(format: "%7.4f  %8.2e", $0.statistic, $0.pValue) } ?? "      -         -"
            lines.append(
                String(feature.name.prefix(27)).padding(toLength: 28, withPad: " ", startingAt: 0)
                    + feature.kind.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)
                    + String(format: "%6.3f  ", feature.psi) + feature.verdict.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0) + ks
                    + String(format: "  %6d/%-6d  %6d/%-6d", feature.rows.reference, feature.rows.current, feature.skipped.reference, feature.skipped.current))
        }
        lines.append("")
        lines.append("\(referenceRows) reference rows, \(currentRows) current rows; \(drifted.count) of \(features.count) features drifted (PSI > 0.25)")
        if !newFeatures.isEmpty { lines.append("only in the current rows (not compared): \(newFeatures.joined(separator: ", "))") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The report as JSON (`--json`).
    public var json: JSON {
        .object([
            "reference_rows": .number(Double(referenceRows)), "current_rows": .number(Double(currentRows)),
            "drifted": .array(drifted.map { .string($0.name) }), "new_features": .array(newFeatures.map { .string($0) }),
            "features": .array(
                features.map { feature in
                    .object([
                        "name": .string(feature.name), "kind": .string(feature.kind.rawValue), "psi": .number(feature.psi),
                        "verdict": .string(feature.verdict.rawValue),
                        "ks": feature.ks.map { .object(["statistic": .number($0.statistic), "p_value": .number($0.pValue)]) } ?? .null,
                        "rows": .object(["reference": .number(Double(feature.rows.reference)), "current": .number(Double(feature.rows.current))]),
                        "skipped": .object(["reference": .number(Double(feature.skipped.reference)), "current": .number(Double(feature.skipped.current))]),
                        "bins": .array(
                            feature.bins.map { .object(["label": .string($0.label), "reference": .number($0.reference), "current": .number($0.current)]) }),
                    ])
                }),
        ])
    }
}
