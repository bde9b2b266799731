import AutoServeModel
import DriftReport
import Foundation
import HTTPFrontend
public import Logging
import ModelManager
import ModelSource
import PluginBuilder
import PluginLoader
import ServingCore
import Synchronization

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// One row's answer as `autoserve score` writes it: the output object, or `{"_error": {...}}` (docs/operations.md, "Scoring a
/// file"), the shape a batch's answer has on the native route.
public struct RowAnswer: Sendable {
    /// The JSON line written for the row.
    public var line: [UInt8]
    /// The error's code and message when the row failed.
    public var error: (code: String, message: String)?

    init(output: [UInt8]) {
        line = output
    }

    init(error: APIError) {
        line = Array(#"{"_error":"#.utf8) + error.errorObject + [UInt8(ascii: "}")]
        self.error = (error.code, error.message)
    }

    /// An element of a batch's `outputs` as the server wrote it.
    init(element: [UInt8]) {
        line = element
        guard element.starts(with: Array(#"{"_error""#.utf8)), case .object(let object)? = try? JSONParser.parse(element),
            case .object(let error)? = object["_error"]
        else { return }
        self.error = (error["code"]?.string ?? "error", error["message"]?.string ?? "")
    }
}

/// Scores batches of rows, in order: a server's batch route, or a model loaded here.
public protocol RowScorer: Sendable {
    /// Each row's answer, in the rows' order; a failure of the whole batch (no answer, an unknown model) throws.
    func score(_ rows: [[UInt8]]) async throws(ScoreError) -> [RowAnswer]
}

/// Why `autoserve score` stopped: the message names the problem and the fix.
public struct ScoreError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// `autoserve score` (docs/operations.md, "Scoring a file"): reads rows, scores them in batches with a few batches in flight,
/// writes one JSON line per row in the input's order, and counts the rows that failed.
public enum FileScoring {
    /// How far a run is.
    public struct Progress: Sendable {
        public var done: Int
        public var total: Int
        public var elapsed: Duration

        public var rowsPerSecond: Double { elapsed.seconds > 0 ? Double(done) / elapsed.seconds : 0 }
        /// The seconds left at the rate so far; `nil` before the first batch.
        public var secondsLeft: Double? { done > 0 ? Double(total - done) / rowsPerSecond : nil }
    }

    /// What a run did: its rows, its time, and the failed rows by error code.
    public struct Summary: Sendable {
        public var rows = 0
        public var elapsed: Duration = .zero
        /// Per error code: how many rows, the first of them (1-based) and its message.
        public var failures: [String: (count: Int, firstRow: Int, message: String)] = [:]

        public var failed: Int { failures.values.reduce(0) { $0 + $1.count } }

        public var text: String {
            let rate = elapsed.seconds > 0 ? Int((Double(rows) / elapsed.seconds).rounded()) : rows
            var text = "\(rows) rows scored in \(String(format: "%.1f", elapsed.seconds)) s (\(rate) rows/s); "
            if failures.isEmpty { return text + "no errors\n" }
            text += "\(failed) failed:\n"
            for (code, failure) in failures.sorted(by: { $0.value.count > $1.value.count || ($0.value.count == $1.value.count && $0.key < $1.key) }) {
                text += "  \(failure.count) \(code), the first at row \(failure.firstRow): \(failure.message)\n"
            }
            return text
        }
    }

    /// The rows of `path` (docs/operations.md, "Scoring a file"): JSON Lines of row objects, request bodies or inference log
    /// lines (of `model`), or CSV with a header of variable names; each row as the bytes of its JSON object.
    public static func rows(_ path: String, model: String) throws(ScoreError) -> [[UInt8]] {
        let file: RowFile
        do {
            file = try RowFile.read(path, model: model, for: .scoring)
        } catch {
            throw ScoreError(error.description)
        }
        return file.rows.map { row in
            var bytes: [UInt8] = []
            // Non-finite numbers cannot be read from JSON or CSV, so the object always writes.
            _ = JSON.writeObject(row, into: &bytes)
            return bytes
        }
    }

    /// Scores `rows` in batches of `batchSize`, `concurrency` batches at a time, handing each batch's lines to
    /// `write` in order and the progress to `progress` after each.
    public static func run(
        _ rows: [[UInt8]], with scorer: any RowScorer, batchSize: Int, concurrency: Int,
        write: @escaping @Sendable ([UInt8]) throws -> Void, progress: @escaping @Sendable (Progress) -> Void
    ) async throws(ScoreError) -> Summary {
        let started = ContinuousClock.now
        var summary = Summary()
        summary.rows = rows.count
        let batches = stride(from: 0, to: rows.count, by: max(batchSize, 1)).map { $0..<min($0 + max(batchSize, 1), rows.count) }
        let outcome: Result<Void, ScoreError> = await withTaskGroup(of: (Int, Result<[RowAnswer], ScoreError>).self) { group in
            var next = 0
            var waiting: [Int: [RowAnswer]] = [:]
            var written = 0
            var done = 0
            while next < min(max(concurrency, 1), batches.count) {
                let (index, batch) = (next, Array(rows[batches[next]]))
                group.addTask { (index, await score(batch, with: scorer)) }
                next += 1
            }
            while let (index, result) = await group.next() {
                switch result {
                case .failure(let error):
                    // The batches in flight finish on their own (cancelling a URLSession task can leave it waiting
                    // for ever on Linux), and no other starts.
                    return .failure(error)
                case .success(let answers):
                    waiting[index] = answers
                }
                while let answers = waiting.removeValue(forKey: written) {
                    var bytes: [UInt8] = []
                    for (offset, answer) in answers.enumerated() {
                        bytes += answer.line
                        bytes.append(UInt8(ascii: "\n"))
                        if let error = answer.error {
                            let row = batches[written].lowerBound + offset + 1
                            summary.failures[error.code, default: (0, row, error.message)].count += 1
                        }
                    }
                    do {
                        try write(bytes)
                    } catch {
                        return .failure(ScoreError("cannot write the answers: \(error)"))
                    }
                    done += answers.count
                    written += 1
                    progress(Progress(done: done, total: rows.count, elapsed: .now - started))
                }
                if next < batches.count {
                    let (index, batch) = (next, Array(rows[batches[next]]))
                    group.addTask { (index, await score(batch, with: scorer)) }
                    next += 1
                }
            }
            return .success(())
        }
        try outcome.get()
        summary.elapsed = .now - started
        return summary
    }
}

extension FileScoring {
    static func score(_ batch: [[UInt8]], with scorer: any RowScorer) async -> Result<[RowAnswer], ScoreError> {
        do throws(ScoreError) {
            return .success(try await scorer.score(batch))
        } catch {
            return .failure(error)
        }
    }
}

/// Scores batches on a running server's native batch route, `POST <url>/<model> {"rows": [...]}` (with `"explain": true`
/// when the run explains).
public struct ServerScorer: RowScorer {
    let endpoint: URL
    let session: URLSession
    let explain: Bool

    /// `url` is the server's address with its base URL (`http://host:8080/models`).
    public init(url: String, model: String, explain: Bool = false) throws(ScoreError) {
        self.explain = explain
        guard let base = URL(string: url), let scheme = base.scheme?.lowercased(), ["http", "https"].contains(scheme), base.host != nil else {
            throw ScoreError("--url \(url): not an http(s) address; give the server's address with its base URL, e.g. http://localhost:8080")
        }
        endpoint = base.appendingPathComponent(model)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 300
        session = URLSession(configuration: configuration)
    }

    public func score(_ rows: [[UInt8]]) async throws(ScoreError) -> [RowAnswer] {
        var body: [UInt8] = Array(#"{"rows":["#.utf8)
        body.reserveCapacity(rows.reduce(16) { $0 + $1.count + 1 })
        for (index, row) in rows.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body += row
        }
        body += Array((explain ? #"],"explain":true}"# : "]}").utf8)
        var request = URLRequest(url: endpoint)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        // No `Expect: 100-continue` (libcurl adds it past 1 MiB): a body over MAX_BODY_BYTES gets its 413 either way.
        request.setValue("", forHTTPHeaderField: "Expect")
        request.httpBody = Data(body)
        // A model still loading (or a worker restarting) answers 503: wait for it a little, as a client of a
        // rolling fleet would.
        for attempt in 1...10 {
            let data: Data
            let response: URLResponse
            do {
                (data, response) = try await session.data(for: request)
            } catch {
                throw ScoreError("\(endpoint.absoluteString): no answer (\(error.localizedDescription)); is the server running at --url?")
            }
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            let bytes = [UInt8](data)
            if status == 200 { return try Self.answers(bytes, count: rows.count, from: endpoint) }
            if status == 503, attempt < 10 {
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            let message = (try? JSONParser.parse(bytes))?["error"]?["message"]?.string ?? String(decoding: bytes.prefix(300), as: UTF8.self)
            let hint = status == 413 ? "; lower --batch-size" : ""
            throw ScoreError("\(endpoint.absoluteString) answered \(status): \(message)\(hint)")
        }
        throw ScoreError("\(endpoint.absoluteString) kept answering 503")
    }

    static func answers(_ body: [UInt8], count: Int, from endpoint: URL) throws(ScoreError) -> [RowAnswer] {
        let elements: [[UInt8]]
        do {
            elements = try body.withUnsafeBytes { bytes throws(JSONParseError) in
                let outputs = try JSONParser.locateObjectMember("outputs", in: bytes)
                return try JSONParser.arrayElements(outputs.range, in: bytes).map { Array(bytes[$0.range]) }
            }
        } catch {
            throw ScoreError("\(endpoint.absoluteString) answered a body that is not {\"outputs\": [...]}: \(error)")
        }
        guard elements.count == count else {
            throw ScoreError("\(endpoint.absoluteString) answered \(elements.count) outputs for \(count) rows; is --url an AutoServe server?")
        }
        return elements.map(RowAnswer.init(element:))
    }
}

/// Scores batches with a model built and loaded here, as the server would (its isolation, its timeout), without
/// a server: `autoserve score --models-dir`.
public struct LocalScorer: RowScorer {
    let model: String
    let runner: any ModelRunner
    /// Keeps the workers' owner alive for the run.
    let manager: ModelManager
    /// Each row's score explained (docs/explanations.md).
    var explain = false
    /// Why the model does not explain, when it does not.
    let explainRefusal: String?

    /// Builds and loads `model`, the folder of that name in `directory`; only that folder is built.
    /// `progress`: say on standard error what is built while it is (the command's; tests pass none).
    public static func load(
        model: String, directory: String, configuration given: ServerConfiguration, logger: Logger, progress: Bool = false
    ) async throws(ScoreError) -> LocalScorer {
        let here = FileManager.default.currentDirectoryPath
        let configuration = given.resolvingPaths(against: here)
        let folder = OneFolderSource(
            model: model,
            source: LocalModelSource(
                directory: ServerConfiguration.absolute(directory, against: here), stateDirectory: configuration.stateDir,
                maxModelBytes: configuration.maxModelBytes))
        let manager = await ModelCheck.builtOnce(
            folder, configuration: configuration, logger: logger, progress: progress ? BuildProgress(command: "score") : nil)
        let snapshot = manager.snapshot()
        if let sync = snapshot.lastSync, !sync.succeeded { throw ScoreError(sync.message) }
        guard let status = snapshot.models[model] else {
            let names = (try? folder.source.scan().models.map(\.name.rawValue)) ?? []
            throw ScoreError(
                "no model folder named '\(model)' in \(folder.source.directory)"
                    + (names.isEmpty ? "" : "; the folders there are \(names.joined(separator: ", "))"))
        }
        guard let serving = status.serving, status.lastError == nil else {
            var message = "\(model) cannot be loaded: \(status.lastError.map { "\($0.diagnostic)" } ?? "not loaded")"
            if let log = status.lastError?.log, !log.isEmpty { message += "\n" + log }
            throw ScoreError(message)
        }
        return LocalScorer(model: model, runner: serving.runner, manager: manager, explainRefusal: serving.explainRefusal)
    }

    /// The same scorer, explaining each row; the model's reason when it does not explain.
    public func explaining() throws(ScoreError) -> LocalScorer {
        if let explainRefusal { throw ScoreError("--explain: \(explainRefusal)") }
        var scorer = self
        scorer.explain = true
        return scorer
    }

    public func score(_ rows: [[UInt8]]) async throws(ScoreError) -> [RowAnswer] {
        let answers = Mutex((answers: [RowAnswer?](repeating: nil, count: rows.count), missing: rows.count))
        let model = model
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<[RowAnswer], Never>) in
            if rows.isEmpty { return continuation.resume(returning: []) }
            for (index, row) in rows.enumerated() {
                runner.predict(variables: row, explain: explain) { prediction in
                    let answer: RowAnswer
                    switch prediction {
                    case .output(let output): answer = RowAnswer(output: output)
                    case .failure(let failure): answer = RowAnswer(error: APIError(failure, model: model))
                    }
                    let all = answers.withLock { state -> [RowAnswer]? in
                        state.answers[index] = answer
                        state.missing -= 1
                        return state.missing == 0 ? state.answers.map { $0! } : nil
                    }
                    if let all { continuation.resume(returning: all) }
                }
            }
        }
    }
}

/// A models folder seen as if it held only one model folder, so `autoserve score --models-dir` builds just that one.
struct OneFolderSource: ModelSourceProvider {
    let model: String
    let source: LocalModelSource

    func sync() async throws(SourceError) -> SourceSnapshot {
        let snapshot = try source.scan()
        return SourceSnapshot(
            models: snapshot.models.filter { $0.name.rawValue == model }, rejected: snapshot.rejected.filter { $0.folderName == model })
    }

    func export(_ folder: ModelFolder) async throws -> String {
        try await source.export(folder)
    }

    var displayName: String { source.displayName }
}

/// `autoserve score --explain -o FILE.csv` (docs/explanations.md, "Scoring a file"): one CSV line per row (per row and
/// class for a multiclass model) with the row's number, its class, the base and one column per feature, in the order
/// of the first explained row's features; a row that failed has its error's code and message in the last column.
public struct ExplanationCSV: Sendable {
    /// The features of the columns, once the first explanation named them.
    var features: [String]?
    var multiclass = false
    var columns = 2
    var row = 0
    /// Contributions of features the header has no column for (a Swift model whose rows name different features).
    public private(set) var leftOut: Set<String> = []
    /// Rows that failed before the header was written, kept until it is.
    var waiting: [[UInt8]] = []

    public init() {}

    /// The CSV lines of the answers' JSON lines (each line of `bytes` is one row's answer).
    public mutating func lines(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            row += 1
            let answer = try? JSONParser.parse(Array(line))
            guard let explanation = answer?["_explanation"], case .object(let members) = explanation else {
                let error = answer?["_error"]
                let text = "\(error?["code"]?.string ?? "error"): \(error?["message"]?.string ?? "no explanation in the answer")"
                let failed = Array("\(row),\(Self.cell(text))\n".utf8)
                if features == nil { waiting.append(failed) } else { out += Self.padded(failed, columns: columns) }
                continue
            }
            // One explanation, or one per class (an object of explanations).
            let perClass: [(String?, [String: JSON])]
            if case .object(let contributions)? = members["contributions"] {
                perClass = [(nil, contributions.merging(["": members["base"] ?? .null]) { first, _ in first })]
            } else {
                perClass = members.sorted { $0.key < $1.key }.compactMap { name, value in
                    guard case .object(let contributions)? = value["contributions"] else { return nil }
                    return (name, contributions.merging(["": value["base"] ?? .null]) { first, _ in first })
                }
            }
            if features == nil {
                multiclass = perClass.first?.0 != nil
                features = (perClass.first?.1.keys.filter { !$0.isEmpty } ?? []).sorted()
                let header = ["row"] + (multiclass ? ["class"] : []) + ["base"] + features! + ["error"]
                columns = header.count
                out += Array((header.map(Self.cell).joined(separator: ",") + "\n").utf8)
                for failed in waiting { out += Self.padded(failed, columns: columns) }
                waiting = []
            }
            for (name, values) in perClass {
                var cells = ["\(row)"] + (multiclass ? [Self.cell(name ?? "")] : []) + [Self.number(values[""])]
                cells += features!.map { Self.number(values[$0]) }
                cells.append("")
                leftOut.formUnion(values.keys.filter { !$0.isEmpty && !features!.contains($0) })
                out += Array((cells.joined(separator: ",") + "\n").utf8)
            }
        }
        return out
    }

    /// What is left to write at the end: the failed rows when no row was explained (a header of its own).
    public mutating func finish() -> [UInt8] {
        guard features == nil, !waiting.isEmpty else { return [] }
        features = []
        var out = Array("row,error\n".utf8)
        for failed in waiting { out += failed }
        waiting = []
        return out
    }

    /// A failed row's line (`row,message`) with the empty cells of the columns between.
    static func padded(_ line: [UInt8], columns: Int) -> [UInt8] {
        guard let comma = line.firstIndex(of: UInt8(ascii: ",")) else { return line }
        return Array(line[..<comma]) + Array(repeating: UInt8(ascii: ","), count: max(columns - 2, 0)) + Array(line[comma...])
    }

    static func number(_ value: JSON?) -> String {
        guard case .number(let number)? = value else { return "" }
        return number.description
    }

    /// A CSV cell of text (a feature or class named by a model file, an error): one a spreadsheet would run as a
    /// formula, beginning with `=`, `+`, `-`, `@`, a tab or a carriage return, begins with `'` instead (OWASP's advice
    /// against CSV injection); one holding a comma, a quote or a line break is quoted (RFC 4180).
    static func cell(_ text: String) -> String {
        let text = text.first.map { "=+-@\t\r".contains($0) } == true ? "'" + text : text
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
