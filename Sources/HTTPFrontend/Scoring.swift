import AutoServeModel
import Foundation
import HTTPTypes
import Logging
import ModelManager
import NIOCore
import ServingCore
import Synchronization

/// What a scoring request asks for.
enum ScoringRoute: Sendable, Equatable {
    /// A model's route, or `all`: `POST <prefix>/<Model>`, `POST <prefix>/all`.
    case model(String)
    /// The Open Inference Protocol's infer: `POST /v2/models/<model>[/versions/<version>]/infer`.
    case infer(model: String, version: String?)
}

/// Scores rows: `<prefix>/<Model>`, `<prefix>/all` and the Open Inference Protocol's infer, for both paths a scoring request can take (the
/// `ScoringChannelHandler` on the event loop, `ServeResponder` behind Hummingbird), so that both give the
/// same answers, errors, headers and metrics.
///
/// Each request reads one registry snapshot and holds the `ServingVersion` it found until it answers, so
/// a swap in the middle never changes the version it runs on. The answer goes to a callback, exactly once.
struct Scoring: Sendable {
    /// A scoring response before HTTP: `Content-Type` is always JSON.
    struct Answer: Sendable, Equatable {
        var status: Int
        var headers: HTTPFields = [:]
        var body: [UInt8]
    }

    let manager: any ModelServing
    let configuration: FrontendConfiguration
    let metrics: Metrics
    let logger: Logger
    let serverName: String?
    /// The handles of requests answered without a model version: to `all`, and to no model folder.
    let allInstruments: RequestInstruments
    /// The first path segments below the prefix that `RouteTable` gives to routes other than a model's or `all`.
    let otherRoutes: Set<String>
    let unknownInstruments: RequestInstruments

    init(manager: any ModelServing, configuration: FrontendConfiguration, metrics: Metrics, logger: Logger, serverName: String?) {
        self.manager = manager
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.serverName = serverName
        otherRoutes = RouteTable(prefix: configuration.prefix).otherNamesBelowPrefix
        allInstruments = RequestInstruments(metrics: metrics, model: "all", version: nil)
        unknownInstruments = RequestInstruments(metrics: metrics, model: Self.unknownModelLabel, version: nil)
    }

    var maxBodyBytes: Int { configuration.maxBodyBytes }

    /// The route of a request the channel handler answers itself: a POST to a model, to `all` or to the Open
    /// Inference Protocol's infer; `nil` sends the request to Hummingbird, which answers everything else.
    func scoringRoute(_ head: HTTPRequest) -> ScoringRoute? {
        Self.scoringRoute(head, prefix: configuration.prefix, otherRoutes: otherRoutes)
    }

    /// The same, for models under `prefix`, where `otherRoutes` are the first segments of the server's other routes.
    static func scoringRoute(_ head: HTTPRequest, prefix: String, otherRoutes: Set<String>) -> ScoringRoute? {
        guard head.method == .post, let target = head.path,
            !(head.headerFields[.connection]?.lowercased().contains("close") ?? false)
        else { return nil }
        let path = target.utf8.firstIndex(of: UInt8(ascii: "?")).map { String(target[..<$0]) } ?? target
        // Binary tensors are refused by Hummingbird's handler, with the protocol's error.
        if let infer = inferRoute(path) { return head.headerFields[.inferenceHeaderContentLength] == nil ? infer : nil }
        guard let route = ServeResponder.modelRoute(path, prefix: prefix), !route.isEmpty, !otherRoutes.contains(route) else { return nil }
        return .model(route)
    }

    /// `/v2/models/<model>/infer` and `/v2/models/<model>/versions/<version>/infer` (a trailing slash ignored, as the
    /// router ignores it).
    static func inferRoute(_ path: String) -> ScoringRoute? {
        guard path.utf8.starts(with: "/v2/models/".utf8) else { return nil }
        var parts = path.utf8.dropFirst("/v2/models/".utf8.count).split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        if parts.last?.isEmpty == true { parts.removeLast() }
        guard parts.last.map({ $0.elementsEqual("infer".utf8) }) == true, !parts[0].isEmpty else { return nil }
        let model = String(Substring(parts[0]))
        switch parts.count {
        case 2: return .infer(model: model, version: nil)
        case 4 where parts[1].elementsEqual("versions".utf8) && !parts[2].isEmpty: return .infer(model: model, version: String(Substring(parts[2])))
        default: return nil
        }
    }

    /// Scores `body` (`nil` when it was over `maxBodyBytes`) as `route` asks: `{"variables": {...}}` or `{"rows": [...]}`
    /// with the model it names or with every model for `all`, or the Open Inference Protocol's tensors.
    func score(_ route: ScoringRoute, body: ByteBuffer?, requestID: String, completion: @escaping @Sendable (Answer) -> Void) {
        let name: String
        switch route {
        case .infer(let model, let version):
            infer(model, version: version, body: body, requestID: requestID, completion: completion)
            return
        case .model(let model): name = model
        }
        let parsed: Result<ScoringRequest, APIError>
        if let body {
            parsed = body.withUnsafeReadableBytes { RequestVariables.parseRequest($0, maxRows: configuration.maxBatchRows) }
        } else {
            parsed = .failure(RequestVariables.tooLarge(maxBodyBytes))
        }
        score(name, parsed, requestID: requestID, completion: completion)
    }

    /// Scores a parsed body: one row with a model or with `all`, a batch with a model; each explained when the body
    /// asks (docs/explanations.md, "The API").
    func score(_ route: String, _ request: Result<ScoringRequest, APIError>, requestID: String, completion: @escaping @Sendable (Answer) -> Void) {
        let variables: Result<[UInt8], APIError>
        let explain = (try? request.get())?.explain ?? false
        switch request.map(\.body) {
        case .success(.rows(let rows)):
            guard route != "all" else {
                let error = APIError(
                    status: 400, code: "invalid_body",
                    message: "all scores one row against every model: send {\"variables\": {...}}; a batch of rows goes to one model's route")
                completion(record(allInstruments, .now, error.answer, requestID: requestID))
                return
            }
            scoreBatch(route, rows, explain: explain, requestID: requestID, completion: completion)
            return
        case .success(.row(let bytes)): variables = .success(bytes)
        case .failure(let error): variables = .failure(error)
        }
        if route == "all" {
            scoreAll(variables, explain: explain, requestID: requestID, completion: completion)
        } else {
            scoreOne(route, variables, explain: explain, requestID: requestID, completion: completion)
        }
    }

    /// How many rows of one batch are in flight at once: enough for the model to work through in `batchQueueTime`, at
    /// the rate it answers this batch's rows, within these bounds (the lower one is the threads a worker runs side by
    /// side). Another client's row then waits behind about that much of a batch, never behind all of it.
    static let batchWindow = 64...1024
    static let batchQueueTime: Duration = .milliseconds(100)
    /// The bytes of one batch's rows in flight at most: a quarter of what a worker queues before it refuses rows
    /// (`WorkerConnection.maximumUnsentBytes`, 1 MiB), so that a batch of wide rows (8 KB each at 500 variables) waits
    /// for its own answers instead of being refused, and leaves room for other requests.
    static let batchBytesInFlight = 256 << 10

    /// Scores a batch of rows with one model (docs/http-api.md, "HTTP API"): `batchWindow` rows at a time, each answer sending
    /// the next row, so the rows of other requests are interleaved with a large batch's; the answer is
    /// `{"outputs": [...]}` in the rows' order, a row that failed holding `{"_error": {...}}` in its place. The
    /// outputs kept are bounded by `MAX_ANSWER_BYTES`: the rows past it are answered 413 `answer_too_large` and not
    /// scored.
    func scoreBatch(
        _ name: String, _ rows: [Result<[UInt8], APIError>], explain: Bool = false, requestID: String,
        render: @escaping @Sendable ([Result<[UInt8], APIError>], ServingVersion) -> Answer = { outcomes, _ in Answer(status: 200, body: outputs(outcomes)) },
        completion: @escaping @Sendable (Answer) -> Void
    ) {
        let start = ContinuousClock.now
        let snapshot = manager.snapshot()
        guard let status = snapshot.models[name] else {
            completion(record(unknownInstruments, start, unknownModel(name, in: snapshot).answer, requestID: requestID))
            return
        }
        guard let version = status.serving else {
            completion(record(RequestInstruments(metrics: metrics, model: name, version: nil), start, Self.notReady(status).answer, requestID: requestID))
            return
        }
        if explain, let refusal = version.explainRefusal {
            var answer = APIError(PredictionFailure(.explainUnsupported, refusal), model: name).answer
            answer.headers[.modelVersion] = version.version
            completion(record(version.instruments, start, answer, requestID: requestID))
            return
        }
        let log = configuration.inferenceLog.flatMap { $0.samples() ? $0 : nil }
        // A batch starts with the window its model's last batch ended with (eight rows for its first): a round trip to
        // learn the rate anew would cost a quick model a quarter of its batch throughput.
        let batch = BatchRun(
            rows: rows, window: Self.batchWindow, initialWindow: version.batchWindow.load(ordering: .relaxed), queueTime: Self.batchQueueTime,
            maxAnswerBytes: configuration.maxAnswerBytes, model: name
        ) { bytes, answer in
            version.drift?.observe(bytes)
            version.predict(variables: bytes, explain: explain, completion: answer)
        } finish: { outcomes, window in
            if let window { version.batchWindow.store(window, ordering: .relaxed) }
            log?.append(zip(rows, outcomes).map { row, outcome in Self.logRecord(requestID, name, version, .model, row, outcome, start) })
            var answer = render(outcomes, version)
            answer.headers[.modelVersion] = version.version
            completion(record(version.instruments, start, answer, requestID: requestID))
        }
        batch.start()
    }

    /// The 404 of a route that names no model folder. Such requests count under `unknownInstruments` and are not
    /// logged: only model folders become label values (and log lines), and any client can make up names without end.
    func unknownModel(_ name: String, in snapshot: RegistrySnapshot) -> APIError {
        let available = snapshot.servingVersions.map(\.name.rawValue)
        let list = available.isEmpty ? "none is ready yet" : "the available ones are \(available.joined(separator: ", "))"
        return APIError(status: 404, code: "not_found", message: "no model named '\(name)'; \(list) (see \(configuration.prefix)/)")
    }

    /// `{"outputs": [...]}`: each row's output object, or `{"_error": {"status", "code", "message"}}`.
    static func outputs(_ outcomes: [Result<[UInt8], APIError>]) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(outcomes.reduce(16) { total, outcome in total + ((try? outcome.get())?.count ?? 120) + 1 })
        body.append(contentsOf: #"{"outputs":["#.utf8)
        for (index, outcome) in outcomes.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            switch outcome {
            case .success(let output): body.append(contentsOf: output)
            case .failure(let error):
                body.append(contentsOf: #"{"_error":"#.utf8)
                body.append(contentsOf: error.errorObject)
                body.append(UInt8(ascii: "}"))
            }
        }
        body.append(contentsOf: "]}".utf8)
        return body
    }

    func scoreOne(
        _ name: String, _ variables: Result<[UInt8], APIError>, explain: Bool = false, requestID: String, completion: @escaping @Sendable (Answer) -> Void
    ) {
        let start = ContinuousClock.now
        let snapshot = manager.snapshot()
        guard let status = snapshot.models[name] else {
            completion(record(unknownInstruments, start, unknownModel(name, in: snapshot).answer, requestID: requestID))
            return
        }
        // The row goes to the inference log, sampled once per request.
        let log = configuration.inferenceLog.flatMap { $0.samples() ? $0 : nil }
        guard let version = status.serving else {
            let error = Self.notReady(status)
            log?.append(Self.logRecord(requestID, name, nil, .model, variables, .failure(error), start))
            completion(record(RequestInstruments(metrics: metrics, model: name, version: nil), start, error.answer, requestID: requestID))
            return
        }
        let versionHeader: HTTPFields = [.modelVersion: version.version]
        switch variables {
        case .failure(let error):
            log?.append(Self.logRecord(requestID, name, version, .model, variables, .failure(error), start))
            var answer = error.answer
            answer.headers[.modelVersion] = version.version
            completion(record(version.instruments, start, answer, requestID: requestID))
        case .success(let bytes):
            version.drift?.observe(bytes)
            version.predict(variables: bytes, explain: explain) { prediction in
                var answer: Answer
                switch prediction {
                case .output(let output):
                    log?.append(Self.logRecord(requestID, name, version, .model, variables, .success(output), start))
                    answer = Answer(status: 200, body: output)
                case .failure(let failure):
                    let error = APIError(failure, model: name)
                    log?.append(Self.logRecord(requestID, name, version, .model, variables, .failure(error), start))
                    answer = error.answer
                }
                answer.headers = versionHeader
                completion(record(version.instruments, start, answer, requestID: requestID))
            }
        }
    }

    /// Scores one row against every ready model at once; failures go under `_errors`. With `explain`, the models that
    /// explain do, and the others are listed under `_errors` (400 `explain_unsupported`).
    func scoreAll(_ body: Result<[UInt8], APIError>, explain: Bool = false, requestID: String, completion: @escaping @Sendable (Answer) -> Void) {
        let start = ContinuousClock.now
        let snapshot = manager.snapshot()
        let variables: [UInt8]
        switch body {
        case .success(let bytes): variables = bytes
        case .failure(let error):
            completion(record(allInstruments, start, error.answer, requestID: requestID))
            return
        }
        let versions = snapshot.servingVersions
        guard !versions.isEmpty else {
            let message =
                snapshot.sourceRead
                ? "no model is ready; see \(configuration.prefix)/ for each model's state" : "the server is still loading: \(snapshot.readinessReason)"
            completion(record(allInstruments, start, APIError(status: 503, code: "no_model_ready", message: message).answer, requestID: requestID))
            return
        }
        let log = configuration.inferenceLog.flatMap { $0.samples() ? $0 : nil }
        for version in versions { version.drift?.observe(variables) }
        FanOut.predict(variables, explain: explain, with: versions) { predictions in
            if let log {
                // One line per member, each with its own version and answer.
                log.append(
                    zip(versions, predictions).map { version, prediction in
                        switch prediction {
                        case .output(let output): Self.logRecord(requestID, version.name.rawValue, version, .all, body, .success(output), start)
                        case .failure(let failure):
                            Self.logRecord(
                                requestID, version.name.rawValue, version, .all, body, .failure(APIError(failure, model: version.name.rawValue)), start)
                        }
                    })
            }
            let answer = Self.merge(predictions, of: versions, notServing: snapshot.notServing, maxAnswerBytes: configuration.maxAnswerBytes)
            completion(record(allInstruments, start, answer, requestID: requestID))
        }
    }

    /// What the inference log keeps of one row (docs/operations.md, "The inference log").
    static func logRecord(
        _ requestID: String, _ model: String, _ version: ServingVersion?, _ route: InferenceRecord.Route, _ variables: Result<[UInt8], APIError>,
        _ outcome: Result<[UInt8], APIError>, _ start: ContinuousClock.Instant
    ) -> InferenceRecord {
        var output: [UInt8]?
        var error: [UInt8]?
        var status = 200
        switch outcome {
        case .success(let bytes): output = bytes
        case .failure(let failure):
            error = failure.errorObject
            status = Int(failure.status.code)
        }
        return InferenceRecord(
            time: Date(), requestID: requestID, model: model, version: version?.version, commit: version?.commit, route: route,
            variables: try? variables.get(), output: output, error: error, status: status, latency: .now - start)
    }

    /// `/all`'s body, from each version's prediction: each model's output under its name (in name order),
    /// errors under `_errors`, the models without a version serving among them; when no model answered, the
    /// status they share (or 500) and an `error` summary. An output that would take the answer past `maxAnswerBytes`
    /// is an error of its model (413 `answer_too_large`).
    static func merge(
        _ predictions: [Prediction], of versions: [ServingVersion], notServing: [(name: String, status: ModelStatus)], maxAnswerBytes: Int
    ) -> Answer {
        var body: [UInt8] = [UInt8(ascii: "{")]
        // Each output with its name (64 bytes at most), quotes, colon and comma, as far as the bound lets them in;
        // errors grow it as they come.
        body.reserveCapacity(
            min(
                predictions.reduce(64) { total, prediction in
                    if case .output(let bytes) = prediction { total + bytes.count + 70 } else { total }
                }, maxAnswerBytes + 70 * predictions.count + 64))
        var errors: [(name: String, error: APIError)] = []
        var outputBytes = 0
        for (version, prediction) in zip(versions, predictions) {
            switch prediction {
            case .output(let bytes) where bytes.count > maxAnswerBytes - outputBytes:
                errors.append(
                    (
                        version.name.rawValue,
                        APIError(
                            status: 413, code: "answer_too_large",
                            message: "\(version.name): the answer of every model together passed MAX_ANSWER_BYTES (\(maxAnswerBytes) bytes) with this "
                                + "model's output; score it on its own route, or raise MAX_ANSWER_BYTES")
                    ))
            case .output(let bytes):
                outputBytes += bytes.count
                if body.count > 1 { body.append(UInt8(ascii: ",")) }
                // A model name is letters, digits, '_' and '-' (`ModelName`): nothing to escape.
                body.append(UInt8(ascii: "\""))
                body.append(contentsOf: version.name.rawValue.utf8)
                body.append(contentsOf: #"":"#.utf8)
                body.append(contentsOf: bytes)
            case .failure(let failure):
                errors.append((version.name.rawValue, APIError(failure, model: version.name.rawValue)))
            }
        }
        let answered = body.count > 1
        // The status the answering models' errors share, before the models without a version join them.
        let statuses = Set(errors.map(\.error.status.code))
        if !notServing.isEmpty {
            errors += notServing.map { ($0.name, Self.notReady($0.status)) }
            errors.sort { $0.name < $1.name }
        }
        if !errors.isEmpty {
            if answered { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: #""_errors":{"#.utf8)
            for (position, (name, error)) in errors.enumerated() {
                if position > 0 { body.append(UInt8(ascii: ",")) }
                JSON.writeString(name, into: &body)
                body.append(UInt8(ascii: ":"))
                body.append(contentsOf: error.errorObject)
            }
            body.append(UInt8(ascii: "}"))
        }
        var status = 200
        if !answered {
            status = statuses.count == 1 ? Int(statuses.first!) : 500
            let summary = APIError(status: status, code: "no_model_answered", message: "no model answered this row; each model's error is under _errors")
            if body.count > 1 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: #""error":"#.utf8)
            body.append(contentsOf: summary.errorObject)
        }
        body.append(UInt8(ascii: "}"))
        return Answer(status: status, body: body)
    }

    static func notReady(_ status: ModelStatus) -> APIError {
        switch status.state {
        case .loading:
            let version = status.pendingVersion.map { " version \($0.prefix(12))" } ?? ""
            return APIError(status: 503, code: "model_loading", message: "\(status.folderName) is loading\(version); retry in a few seconds")
        case .failed, .ready:
            let reason = status.lastError.map { "\($0.diagnostic)" } ?? "no version could be loaded"
            return APIError(status: 503, code: "model_failed", message: "\(status.folderName) has no version serving: \(reason); fix the folder and sync again")
        }
    }

    /// The `model` label of requests to no model folder; a folder name starts with a letter, so none collides.
    static let unknownModelLabel = "_unknown"

    /// Counts the request in the metrics (and the debug log) and passes the answer on, with its `X-Request-ID`.
    func record(_ instruments: RequestInstruments, _ start: ContinuousClock.Instant, _ answer: Answer, requestID: String) -> Answer {
        let seconds = (ContinuousClock.now - start).seconds
        instruments.record(status: answer.status, seconds: seconds)
        if logger.logLevel <= .debug {
            logger.debug(
                "request",
                metadata: [
                    "model": "\(instruments.model)", "status": "\(answer.status)", "version": "\(instruments.version.prefix(12))", "seconds": "\(seconds)",
                    "request_id": "\(requestID)",
                ])
        }
        var answer = answer
        answer.headers[.requestID] = requestID
        return answer
    }
}

extension APIError {
    var answer: Scoring.Answer { Scoring.Answer(status: Int(status.code), headers: headers, body: bodyBytes) }
}

/// One batch's rows on their way through a model: a window of rows in flight, each answer sending the next (as many as
/// the model answers in `queueTime` at the rate it has answered this batch so far, within `window`; `initialWindow`
/// before any answer, and `finish` learns the last one, for the next batch; and no more of their bytes than
/// `Scoring.batchBytesInFlight`),
/// and the outputs of the longest run of first rows that fits in `maxAnswerBytes`; every later row is answered 413
/// `answer_too_large`, unscored when it was not sent yet. `finish` gets every outcome, in the rows' order, once.
///
/// The window also shrinks to the room left in the answer: once outputs have come, no more rows are in flight than
/// outputs of their average size fit in the room (at least one). A model that answers
/// megabytes a row thus has a few rows in flight, not a window's worth of megabytes on their way to be dropped.
///
/// Answers come in any order within the window: an output is kept while the kept ones fit, and when they no longer
/// do, the kept output of the highest row is dropped and that row becomes the cut, until they fit again. The outputs
/// kept never pass the bound, and what stays is exactly the first rows that fit, whatever the order of arrival.
///
/// A row the worker refuses as too far behind (503 `model_overloaded`, its backlog full of this batch's rows and
/// others') is sent again once one of the batch's rows in flight is answered, and nothing is sent until then: a batch
/// waits for the model rather than failing rows for a queue of the server's own.
///
/// Answers come on any thread, and a refusal can come at once, inside `send`: the rows are sent by one loop at a
/// time (`pump`), which a completion asks to go round again rather than entering it, so that a batch of a million
/// refused rows does not recurse a million deep.
final class BatchRun: Sendable {
    typealias Outcome = Result<[UInt8], APIError>

    private struct State {
        var outcomes: [Outcome?]
        var missing: Int
        /// The next row to send, and the rows sent and not answered.
        var next = 0
        var inFlight = 0
        /// The bytes of the rows in flight.
        var bytesInFlight = 0
        /// Rows the worker refused as too far behind while others of this batch were in flight: sent again, first,
        /// once an answer makes room; until then no row is sent (`waitingForAnswer`).
        var retry: [Int] = []
        var waitingForAnswer = false
        /// The bytes of the outputs kept, and the first row cut from the answer (the row count while none is).
        var bytes = 0
        var cut: Int
        /// The outputs that came so far, and their bytes (kept or not): their average size.
        var outputs = 0
        var outputBytes = 0
        var pumping = false
        var pumpAgain = false
        var finished = false
    }

    private let rows: [Outcome]
    private let window: ClosedRange<Int>
    private let initialWindow: Int
    private let queueTime: Duration
    private let started = ContinuousClock.now
    private let maxAnswerBytes: Int
    private let model: String
    private let send: @Sendable ([UInt8], @escaping @Sendable (Prediction) -> Void) -> Void
    private let finish: @Sendable ([Outcome], Int?) -> Void
    private let state: Mutex<State>

    /// `finish` gets the outcomes and the window the batch ended with (`nil` when no output came to measure it by).
    init(
        rows: [Outcome], window: ClosedRange<Int>, initialWindow: Int, queueTime: Duration, maxAnswerBytes: Int, model: String,
        send: @escaping @Sendable ([UInt8], @escaping @Sendable (Prediction) -> Void) -> Void,
        finish: @escaping @Sendable ([Outcome], Int?) -> Void
    ) {
        self.rows = rows
        self.window = window
        self.initialWindow = initialWindow.clamped(to: 1...window.upperBound)
        self.queueTime = queueTime
        self.maxAnswerBytes = maxAnswerBytes
        self.model = model
        self.send = send
        self.finish = finish
        state = Mutex(State(outcomes: Array(repeating: nil, count: rows.count), missing: rows.count, cut: rows.count))
    }

    func start() {
        if rows.isEmpty {
            finish([], nil)
            return
        }
        pump()
    }

    /// Sends rows while the window has room; rows that failed to parse, or that come after the answer filled up, are
    /// answered here without a model.
    private func pump() {
        let enter = state.withLock { state in
            guard !state.pumping else {
                state.pumpAgain = true
                return false
            }
            state.pumping = true
            return true
        }
        guard enter else { return }
        // The window is worked out once a round, not once a row.
        var allowed = state.withLock { allowedInFlight($0) }
        while true {
            let (index, row): (Int, Outcome?) = state.withLock { state in
                if let index = state.retry.last, hasRoom(state, allowed: allowed, row: index) {
                    state.retry.removeLast()
                    state.inFlight += 1
                    state.bytesInFlight += size(of: index)
                    return (index, nil)
                }
                guard state.next < rows.count, state.next >= state.cut || (state.retry.isEmpty && hasRoom(state, allowed: allowed, row: state.next))
                else {
                    guard state.pumpAgain else {
                        state.pumping = false
                        return (-1, nil)
                    }
                    state.pumpAgain = false
                    allowed = allowedInFlight(state)
                    return (-2, nil)
                }
                let index = state.next
                state.next += 1
                if case .failure = rows[index] { return (index, rows[index]) }
                if index >= state.cut { return (index, .failure(tooLarge)) }
                state.inFlight += 1
                state.bytesInFlight += size(of: index)
                return (index, nil)
            }
            if index == -1 { return }
            if index == -2 { continue }
            if let row {
                record(index, row, sent: false)
            } else if case .success(let bytes) = rows[index] {
                send(bytes) { [self] prediction in
                    switch prediction {
                    case .output(let output): record(index, .success(output), sent: true)
                    case .failure(let failure) where failure.kind == .overloaded && requeue(index): break
                    case .failure(let failure): record(index, .failure(APIError(failure, model: model)), sent: true)
                    }
                    pump()
                }
            }
        }
    }

    /// Whether the next row may be sent: fewer than `allowed` rows in flight, and room for its bytes under
    /// `Scoring.batchBytesInFlight` (a row goes alone whatever its size).
    private func hasRoom(_ state: State, allowed: Int, row: Int) -> Bool {
        !state.waitingForAnswer && state.inFlight < allowed
            && (state.inFlight == 0 || state.bytesInFlight + size(of: row) <= Scoring.batchBytesInFlight)
    }

    /// Keeps a row the worker refused as too far behind, to send again after the next answer, when other rows of
    /// this batch are in flight (their answers make room); `false` when none is, and the refusal is the row's answer.
    private func requeue(_ index: Int) -> Bool {
        state.withLock { state in
            guard state.inFlight > 1 else { return false }
            state.inFlight -= 1
            state.bytesInFlight -= size(of: index)
            state.retry.append(index)
            state.waitingForAnswer = true
            return true
        }
    }

    private func size(of index: Int) -> Int {
        if case .success(let bytes) = rows[index] { bytes.count } else { 0 }
    }

    /// The rows that may be in flight now: what the model answers in `queueTime` at its rate so far (within
    /// `window`), or fewer when the room left in the answer holds fewer outputs of the average size so far (eight,
    /// before any output came).
    private func allowedInFlight(_ state: State) -> Int {
        guard state.outputs > 0 else { return initialWindow }
        let average = max(1, state.outputBytes / state.outputs)
        return max(1, min(windowByRate(state), (maxAnswerBytes - state.bytes) / average))
    }

    /// The rows the model answers in `queueTime` at the rate it answered this batch so far, within `window`.
    private func windowByRate(_ state: State) -> Int {
        let elapsed = (ContinuousClock.now - started) / queueTime
        let byRate = elapsed > 0 ? Int(min(Double(window.upperBound), Double(state.outputs) / elapsed)) : window.upperBound
        return byRate.clamped(to: window)
    }

    /// Keeps row `index`'s outcome (an output only while the answer has room) and finishes after the last row.
    private func record(_ index: Int, _ outcome: Outcome, sent: Bool) {
        let done = state.withLock { state -> (outcomes: [Outcome], window: Int?)? in
            if sent {
                state.inFlight -= 1
                state.bytesInFlight -= size(of: index)
                state.waitingForAnswer = false
            }
            if case .success(let output) = outcome {
                state.outputs += 1
                state.outputBytes += output.count
            }
            if case .success(let output) = outcome, index < state.cut {
                state.outcomes[index] = outcome
                state.bytes += output.count
                while state.bytes > maxAnswerBytes {
                    // The kept output of the highest row goes, and that row is the cut.
                    var highest = state.cut - 1
                    while highest > 0, !state.outcomes[highest].isSuccess { highest -= 1 }
                    if case .success(let dropped)? = state.outcomes[highest] { state.bytes -= dropped.count }
                    state.outcomes[highest] = .failure(tooLarge)
                    state.cut = highest
                }
            } else if case .success = outcome {
                state.outcomes[index] = .failure(tooLarge)
            } else {
                state.outcomes[index] = outcome
            }
            state.missing -= 1
            guard state.missing == 0, !state.finished else { return nil }
            state.finished = true
            return (state.outcomes.map { $0! }, state.outputs > 0 ? windowByRate(state) : nil)
        }
        if let done { finish(done.outcomes, done.window) }
    }

    private var tooLarge: APIError {
        APIError(
            status: 413, code: "answer_too_large",
            message:
                "the batch's answer reached MAX_ANSWER_BYTES (\(maxAnswerBytes) bytes) before this row; send fewer rows per request, or raise MAX_ANSWER_BYTES")
    }
}

extension Optional where Wrapped == Result<[UInt8], APIError> {
    /// Whether this is an output (not an error, not missing).
    fileprivate var isSuccess: Bool {
        if case .success? = self { true } else { false }
    }
}

extension Int {
    fileprivate func clamped(to range: ClosedRange<Int>) -> Int { Swift.min(Swift.max(self, range.lowerBound), range.upperBound) }
}
