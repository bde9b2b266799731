import ArgumentParser
import DriftReport
import Foundation

extension AutoServeCommand {
    /// `autoserve drift`: how the rows a model sees now differ from the rows it was trained on (docs/operations.md, "Drift reports").
    struct Drift: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare current rows with reference rows, feature by feature (PSI and Kolmogorov–Smirnov).",
            discussion: """
                REF and CUR are inference logs (INFERENCE_LOG), JSON Lines files of row objects, or CSV files whose header \
                names the features. From an inference log, the rows answered with 200 count: their variables, and each \
                numeric output as output.<name>.

                For each feature of the reference: the Population Stability Index, with bins at the reference's deciles \
                for numbers (one bin per value for the others, and one for values the reference never had; an empty bin \
                counts as 0.0001), and for numbers the two-sample Kolmogorov–Smirnov statistic with its asymptotic p-value. \
                PSI < 0.1 is stable, 0.1 to 0.25 moderate, > 0.25 drifted.

                Exit status: 0 when no feature drifted, 3 when one did, 1 when an input cannot be read (the message names \
                the file and the line).
                """
        )

        @Option(name: .customLong("reference"), help: "The rows the model was trained or validated on.") var reference: String
        @Option(name: .customLong("current"), help: "The rows it sees now.") var current: String
        @Option(help: "Only the lines of this model, in inference logs.") var model: String?
        @Option(help: "Also write a self-contained HTML report (the table and a histogram per feature) to this file.") var html: String?
        @Flag(help: "Print the report as JSON instead of a table.") var json = false

        func run() throws {
            let report: DriftReport
            do {
                let referenceRows = try RowFile.read(reference, model: model)
                let currentRows = try RowFile.read(current, model: model)
                for (side, file, rows) in [("reference", reference, referenceRows), ("current", current, currentRows)] where rows.rows.isEmpty {
                    throw DriftInputError("\(file): no rows\(model.map { " of model \($0)" } ?? "") in the \(side) (\(rows.ignored) lines ignored)")
                }
                report = DriftReport(reference: referenceRows.rows, current: currentRows.rows)
            } catch {
                FileHandle.standardError.write(Data("autoserve drift: \(error)\n".utf8))
                throw ExitCode.failure
            }
            print(json ? report.json.jsonText : report.table, terminator: json ? "\n" : "")
            if let html {
                let title =
                    "Drift of \(model ?? "the rows"): \(URL(fileURLWithPath: current).lastPathComponent) against \(URL(fileURLWithPath: reference).lastPathComponent)"
                do {
                    try OutputFile.write(report.html(title: title), to: html)
                } catch {
                    FileHandle.standardError.write(Data("autoserve drift: cannot write \(html): \(error)\n".utf8))
                    throw ExitCode.failure
                }
            }
            if !report.drifted.isEmpty { throw ExitCode(3) }
        }
    }
}
