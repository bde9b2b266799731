import AutoServeModel
import Foundation
import Testing

@testable import DriftReport

/// PSI and Kolmogorov–Smirnov against values numpy and scipy computed from the same files
/// (`Tests/Fixtures/drift/make_fixture.py`, its outputs committed beside it).
@Suite struct DriftReportTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/drift").path

    static func expected() throws -> [String: [String: [String: Double]]] {
        try JSONDecoder().decode([String: [String: [String: Double]]].self, from: Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/expected.json")))
    }

    static func report(_ current: String) throws -> DriftReport {
        let reference = try RowFile.read("\(fixtures)/reference.jsonl", model: nil)
        let rows = try RowFile.read("\(fixtures)/\(current)", model: "Churn")
        return DriftReport(reference: reference.rows, current: rows.rows)
    }

    @Test(arguments: [("shifted", "current-shifted.jsonl"), ("unshifted", "current-unshifted.csv")])
    func valuesMatchNumpyAndScipy(name: String, file: String) throws {
        let expected = try #require(try Self.expected()[name])
        let report = try Self.report(file)
        for (feature, values) in expected {
            let found = try #require(report.features.first { $0.name == feature }, "\(feature) is missing")
            #expect(abs(found.psi - values["psi"]!) < 1e-9, "\(name) \(feature) PSI \(found.psi), scipy side \(values["psi"]!)")
            if let statistic = values["ks_statistic"], let pValue = values["ks_p_value"] {
                let ks = try #require(found.ks)
                #expect(abs(ks.statistic - statistic) < 1e-12, "\(name) \(feature) KS \(ks.statistic) against \(statistic)")
                #expect(
                    abs(ks.pValue - pValue) <= 1e-9 * max(1, pValue) || abs(ks.pValue / pValue - 1) < 1e-6,
                    "\(name) \(feature) p \(ks.pValue) against \(pValue)")
            } else {
                #expect(found.ks == nil && found.kind == .categorical)
            }
        }
    }

    @Test func theShiftedFeaturesAreTheDriftedOnes() throws {
        let shifted = try Self.report("current-shifted.jsonl")
        #expect(Set(shifted.drifted.map(\.name)) == ["income", "segment"], "\(shifted.table)")
        #expect(shifted.newFeatures == ["output.score"], "the model's numeric output, which the reference rows do not have")
        #expect(shifted.features.first { $0.name == "age" }?.verdict == .stable)
        #expect(shifted.features.first?.psi == shifted.features.map(\.psi).max(), "sorted by PSI")
        #expect(shifted.currentRows == 1500, "the other model's line and the error answer are left out")
        let segment = try #require(shifted.features.first { $0.name == "segment" })
        #expect(segment.bins.last?.label == "(unseen)" && (segment.bins.last?.current ?? 0) > 0.1, "the new value has a bin of its own")
        #expect(try Self.report("current-unshifted.csv").drifted.isEmpty)
    }

    @Test func missingAndMistypedValuesAreSkippedAndCounted() {
        let reference: [[String: JSON]] = (0..<100).map { ["x": .number(Double($0))] }
        let current: [[String: JSON]] = (0..<100).map { index -> [String: JSON] in
            switch index % 10 {
            case 0: ["x": .string("n/a")]
            case 1: [:]
            default: ["x": .number(Double(index))]
            }
        }
        let feature = DriftReport(reference: reference, current: current).features[0]
        #expect(feature.rows.reference == 100 && feature.rows.current == 80)
        #expect(feature.skipped.reference == 0 && feature.skipped.current == 20)
    }

    @Test func kolmogorovsDistributionAtKnownPoints() {
        // scipy.stats.kstwobign.sf at 0.5, 1.0, 1.36 and 2.0.
        #expect(abs(DriftStatistics.kolmogorovSurvival(0.5) - 0.9639452436648751) < 1e-12)
        #expect(abs(DriftStatistics.kolmogorovSurvival(1.0) - 0.26999967167735456) < 1e-12)
        #expect(abs(DriftStatistics.kolmogorovSurvival(1.36) - 0.049485876755377876) < 1e-12)
        #expect(abs(DriftStatistics.kolmogorovSurvival(2.0) - 0.0006709252557796953) < 1e-12)
    }

    @Test func badInputNamesTheFileAndLine() throws {
        let path = "\(NSTemporaryDirectory())drift-bad-\(UUID().uuidString).jsonl"
        try "{\"x\": 1}\n{\"x\": 2\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: DriftInputError.self) { try RowFile.read(path, model: nil) }
        do {
            _ = try RowFile.read(path, model: nil)
        } catch {
            #expect(error.description.hasPrefix("\(path):2: "), "\(error)")
        }
        let csv = "\(NSTemporaryDirectory())drift-bad-\(UUID().uuidString).csv"
        try "a,b\n1,2\n3\n".write(toFile: csv, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: csv) }
        do {
            _ = try RowFile.read(csv, model: nil)
            Issue.record("a short CSV line was read")
        } catch {
            #expect(error.description.hasPrefix("\(csv):3: 1 cells"), "\(error)")
        }
    }
}
