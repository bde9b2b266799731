import ArgumentParser
import AutoServeApp
import Foundation
import PluginLoader
import Synchronization

extension AutoServeCommand {
    /// `autoserve score`: scores a file of rows with one model, on a server or here (docs/operations.md, "Scoring a file").
    struct Score: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Score a file of rows with one model, on a running server (--url) or built here (--models-dir).",
            discussion: """
                INPUT is JSON Lines (a row object per line, or {"variables": {...}}, or the lines of an inference log) or \
                CSV (a header of variable names; numbers, true/false, text; an empty cell is missing). One JSON line per \
                row is written in the input's order: the model's output, or {"_error": {"status", "code", "message"}} \
                for a row that failed. With --explain each output carries its _explanation (docs/explanations.md); with \
                --explain and -o FILE.csv the file holds the explanations as CSV instead: a line per row (per row and \
                class for a multiclass model) with the base and one column per feature. Progress goes to standard error: a bar on a terminal, a line a second otherwise; \
                then a summary of the errors.

                Exit status: 0 when every row was scored, 3 when some rows failed, 1 when the run could not go on (an \
                input that cannot be read, no server at --url, a model that does not build).
                """
        )

        @Option(help: "The model folder's name.") var model: String
        @Option(help: "A running server's address with its base URL, e.g. http://localhost:8080.") var url: String?
        @Option(name: .shortAndLong, help: "Write the answers here instead of standard output.") var output: String?
        @Option(name: .customLong("batch-size"), help: "Rows per request (at most the server's MAX_BATCH_ROWS).") var batchSize = 1000
        @Option(help: "Batches in flight at once.") var concurrency = 2
        @Flag(help: "Explain each row's score: its _explanation in each output, or as CSV with -o FILE.csv.") var explain = false
        @Argument(help: "The rows: a .jsonl or .csv file.") var input: String
        @OptionGroup(title: "Settings of the model built here (with --models-dir)") var options: ServeOptions

        func validate() throws {
            guard (url == nil) != (options.modelsDirFlag == nil) else {
                throw ValidationError("give either --url (score on a running server) or --models-dir (build the model here and score without a server)")
            }
            guard batchSize >= 1 else { throw ValidationError("--batch-size \(batchSize): give 1 or more rows") }
            guard concurrency >= 1 else { throw ValidationError("--concurrency \(concurrency): give 1 or more batches") }
            if let output, output.lowercased().hasSuffix(".csv"), !explain {
                throw ValidationError("-o \(output): a CSV file holds explanations; add --explain, or write JSON Lines (-o answers.jsonl)")
            }
        }

        func run() async throws {
            defer { ProcessLoader.processEnds() }
            let summary: FileScoring.Summary
            do {
                let server = try url.map { url throws(ScoreError) in try ServerScorer(url: url, model: model, explain: explain) }
                let rows = try FileScoring.rows(input, model: model)
                let scorer: any RowScorer
                if let server {
                    scorer = server
                } else {
                    let configuration = try loadConfiguration(options)
                    let logger = bootstrapLogging(configuration.logLevel == .info ? .warning : configuration.logLevel)
                    let local = try await LocalScorer.load(
                        model: model, directory: configuration.modelsDir, configuration: configuration, logger: logger, progress: true)
                    scorer = explain ? try local.explaining() : local
                }
                let sink = try AnswerSink(path: output)
                let csv = output.map { $0.lowercased().hasSuffix(".csv") } == true ? ExplanationFile() : nil
                let write: @Sendable ([UInt8]) throws -> Void = { bytes in
                    guard let csv else { return try sink.write(bytes) }
                    try sink.write(csv.state.withLock { $0.lines(bytes) })
                }
                let bar = ProgressLine(terminal: isatty(2) == 1)
                summary = try await FileScoring.run(rows, with: scorer, batchSize: batchSize, concurrency: concurrency, write: write, progress: bar.show)
                bar.finish()
                if let csv {
                    try sink.write(csv.state.withLock { $0.finish() })
                    let leftOut = csv.state.withLock { $0.leftOut }
                    if !leftOut.isEmpty {
                        FileHandle.standardError.write(
                            Data(
                                "autoserve score: the CSV has columns for the first explained row's features; contributions of \(leftOut.sorted().prefix(10).joined(separator: ", ")) were left out (JSON Lines keeps them all)\n"
                                    .utf8))
                    }
                }
                try sink.close()
            } catch let error as ScoreError {
                FileHandle.standardError.write(Data("autoserve score: \(error)\n".utf8))
                throw ExitCode.failure
            }
            FileHandle.standardError.write(Data(summary.text.utf8))
            if summary.failed > 0 { throw ExitCode(3) }
        }
    }
}

/// The explanations written as CSV, answer after answer (`-o FILE.csv --explain`).
final class ExplanationFile: Sendable {
    let state = Mutex(ExplanationCSV())
}

/// Where the answers go: a file, or standard output.
final class AnswerSink: Sendable {
    let handle: FileHandle
    let path: String?

    init(path: String?) throws(ScoreError) {
        self.path = path
        guard let path else {
            handle = .standardOutput
            return
        }
        let descriptor = OutputFile.open(path)
        guard descriptor >= 0 else {
            throw ScoreError("-o \(path): cannot create the file (\(String(cString: strerror(errno)))); check that its folder exists and is writable")
        }
        handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    }

    func write(_ bytes: [UInt8]) throws {
        try handle.write(contentsOf: bytes)
    }

    func close() throws(ScoreError) {
        guard let path else { return }
        do {
            try handle.close()
        } catch {
            throw ScoreError("-o \(path): cannot finish writing: \(error)")
        }
    }
}

/// The progress of `autoserve score` on standard error: a bar redrawn in place on a terminal, else a plain line at
/// most once a second (and the last one).
final class ProgressLine: Sendable {
    let terminal: Bool
    let lastShown = Mutex<ContinuousClock.Instant?>(nil)

    init(terminal: Bool) {
        self.terminal = terminal
    }

    func show(_ progress: FileScoring.Progress) {
        let now = ContinuousClock.now
        let due = lastShown.withLock { last in
            guard progress.done == progress.total || last.map({ now - $0 >= (terminal ? .milliseconds(100) : .seconds(1)) }) ?? true else { return false }
            last = now
            return true
        }
        guard due else { return }
        let rate = Int(progress.rowsPerSecond.rounded())
        let eta = progress.secondsLeft.map { "ETA \(Int($0.rounded(.up))) s" } ?? "ETA ?"
        if terminal {
            let width = 30
            let filled = progress.total == 0 ? width : width * progress.done / progress.total
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            FileHandle.standardError.write(Data("\r[\(bar)] \(progress.done)/\(progress.total) rows  \(rate) rows/s  \(eta)   ".utf8))
        } else {
            FileHandle.standardError.write(Data("scored \(progress.done)/\(progress.total) rows, \(rate) rows/s, \(eta)\n".utf8))
        }
    }

    func finish() {
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// The files the commands write for a person (`-o`, `--html`): opened in place and truncated, never replaced by a new
/// file, so that `-o /dev/null` or a named pipe stays what it is (an atomic write would rename a file over it).
enum OutputFile {
    static func open(_ path: String) -> Int32 {
        Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    }

    static func write(_ text: String, to path: String) throws {
        let descriptor = open(path)
        guard descriptor >= 0 else { throw ScoreError("cannot open \(path): \(String(cString: strerror(errno)))") }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        try handle.write(contentsOf: Data(text.utf8))
        try handle.close()
    }
}
