import HTTPTypes
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import ServingCore
import Testing

@testable import HTTPFrontend

/// Scores rows as the test says: at once, or when the test finishes them (a row in flight).
final class StubScorer: RowScoring, @unchecked Sendable {
    let maxBodyBytes: Int
    let serverName: String? = "autoserve"
    let otherRoutes = RouteTable(prefix: "").otherNamesBelowPrefix
    var holding: Bool
    /// Every row scored: its route and its body (`nil`: over the limit).
    var scored: [(route: String, body: String?)] = []
    private var waiting: [(answer: Scoring.Answer, completion: @Sendable (Scoring.Answer) -> Void)] = []

    init(maxBodyBytes: Int = 1000, holding: Bool = false) {
        self.maxBodyBytes = maxBodyBytes
        self.holding = holding
    }

    func scoringRoute(_ head: HTTPRequest) -> ScoringRoute? { Scoring.scoringRoute(head, prefix: "", otherRoutes: otherRoutes) }

    func score(_ route: ScoringRoute, body: ByteBuffer?, requestID: String, completion: @escaping @Sendable (Scoring.Answer) -> Void) {
        let route =
            switch route {
            case .model(let name): name
            case .infer(let model, let version): "infer \(model) \(version ?? "-")"
            }
        let text = body.map { String(buffer: $0) }
        scored.append((route, text))
        let answer = Scoring.Answer(
            status: 200, headers: [.requestID: requestID], body: Array("{\"route\":\"\(route)\",\"bytes\":\(text?.utf8.count ?? -1)}".utf8))
        if holding { waiting.append((answer, completion)) } else { completion(answer) }
    }

    var inFlight: Int { waiting.count }

    /// Answers the oldest row in flight.
    func finish() {
        let (answer, completion) = waiting.removeFirst()
        completion(answer)
    }
}

/// Stands in for Hummingbird behind the scoring handler: answers each request it is given with
/// `hummingbird <path>`, closes after a request with `Connection: close`, and after its answer on a stop.
final class HummingbirdStandIn: ChannelInboundHandler {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart
    private var head: HTTPRequest?
    private var quiescing = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request): head = request
        case .body: break
        case .end:
            let body = "hummingbird \(head?.path ?? "")"
            let closing = quiescing || head?.headerFields[.connection] == "close"
            var fields: HTTPFields = [.contentLength: "\(body.utf8.count)"]
            if closing { fields[.connection] = "close" }
            context.write(wrapOutboundOut(.head(HTTPResponse(status: .ok, headerFields: fields))), promise: nil)
            context.write(wrapOutboundOut(.body(ByteBuffer(string: body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            head = nil
            if closing { context.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else { return context.fireUserInboundEventTriggered(event) }
        quiescing = true
        if head == nil { context.close(promise: nil) }
    }
}

/// The scoring handler on `EmbeddedChannel`, in the pipeline Hummingbird builds (NIO's HTTP/1 codec, the conversion
/// to HTTP types, then the handler and Hummingbird's side), fed raw bytes as a client sends them.
struct ScoringHandlerTests {
    let channel = EmbeddedChannel()
    let scorer: StubScorer

    init(maxBodyBytes: Int = 1000, holding: Bool = false) throws {
        scorer = StubScorer(maxBodyBytes: maxBodyBytes, holding: holding)
        let pipeline = channel.pipeline.syncOperations
        try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
        try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
        let limiter = ConnectionLimiter(limit: 10, metrics: Metrics(), logger: Logger(label: "test"))
        try pipeline.addHandler(ScoringChannelHandler(scoring: scorer, connectionGuard: ConnectionGuard(limiter: limiter, timeouts: ConnectionTimeouts())))
        try pipeline.addHandler(HummingbirdStandIn())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
    }

    init() throws { try self.init(maxBodyBytes: 1000, holding: false) }

    func send(_ text: String) {
        // A request the decoder refuses comes back as the error it raised: the test reads the answer instead.
        _ = try? channel.writeInbound(ByteBuffer(string: text))
    }

    /// Everything written to the client since the last call.
    func received() throws -> String {
        var text = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { text += String(buffer: buffer) }
        }
        return text
    }

    /// The status lines of `text`'s answers, in order, with the body that follows each.
    static func answers(_ text: String) -> [String] {
        text.components(separatedBy: "HTTP/1.").dropFirst().map { answer in
            let status = answer.prefix { $0 != "\r\n" }
            let body = answer.components(separatedBy: "\r\n\r\n").dropFirst().joined()
            return "\(status) \(body)"
        }
    }

    static func post(_ path: String, _ body: String, headers: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\(headers)\r\n\(body)"
    }

    @Test func pipelinedRequestsAreAnsweredInOrderWhateverAnswersThem() throws {
        let test = try ScoringHandlerTests(holding: true)
        test.send(Self.post("/A", "{}") + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + Self.post("/B", "{\"x\":1}"))
        #expect(test.scorer.inFlight == 1)
        #expect(try test.received().isEmpty, "nothing is answered before the first row")
        test.scorer.finish()
        // B came while Hummingbird owed the answer to /healthz: it goes there too, so that answers keep their order.
        #expect(test.scorer.inFlight == 0)
        test.send(Self.post("/C", "{}"))
        test.scorer.finish()
        let answers = Self.answers(try test.received())
        #expect(
            answers == [
                "1 200 OK {\"route\":\"A\",\"bytes\":2}", "1 200 OK hummingbird /healthz", "1 200 OK hummingbird /B", "1 200 OK {\"route\":\"C\",\"bytes\":2}",
            ])
        #expect(test.scorer.scored.map(\.route) == ["A", "C"])
        #expect(test.channel.isActive)
    }

    @Test func aBodyInManyPartsIsScoredWhole() throws {
        let test = try ScoringHandlerTests()
        let body = "{\"variables\": {\"text\": \"" + String(repeating: "x", count: 200) + "\"}}"
        test.send("POST /Iris HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
        var rest = Substring(body)
        while !rest.isEmpty {
            test.send(String(rest.prefix(17)))
            rest = rest.dropFirst(17)
        }
        #expect(test.scorer.scored.map(\.body) == [body])
        #expect(Self.answers(try test.received()) == ["1 200 OK {\"route\":\"Iris\",\"bytes\":\(body.utf8.count)}"])
    }

    @Test func aChunkedBodyOverTheLimitIsScoredAsTooLarge() throws {
        let test = try ScoringHandlerTests(maxBodyBytes: 100)
        test.send("POST /Iris HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in 0..<5 { test.send("20\r\n" + String(repeating: "y", count: 32) + "\r\n") }
        test.send("0\r\n\r\n")
        #expect(test.scorer.scored.count == 1)
        #expect(test.scorer.scored.first?.body == nil, "the body passed MAX_BODY_BYTES: Scoring answers 413")
    }

    @Test func anErrorMidBodyAnswers400AndCloses() throws {
        let test = try ScoringHandlerTests()
        test.send("POST /Iris HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        test.send("zz\r\nnot a chunk size\r\n")
        let text = try test.received()
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request"), "\(text)")
        #expect(text.contains("\"code\":\"invalid_http\""))
        #expect(text.lowercased().contains("connection: close"))
        #expect(test.scorer.scored.isEmpty)
        #expect(!test.channel.isActive)
    }

    @Test func aRowInFlightIsAnsweredBeforeAParseErrorCloses() throws {
        let test = try ScoringHandlerTests(holding: true)
        test.send(Self.post("/A", "{}"))
        test.send("NOT HTTP AT ALL\r\n\r\n")
        #expect(test.channel.isActive, "the row in flight is answered first")
        test.scorer.finish()
        let text = try test.received()
        #expect(Self.answers(text) == ["1 200 OK {\"route\":\"A\",\"bytes\":2}"])
        #expect(text.lowercased().contains("connection: close"))
        #expect(!test.channel.isActive)
    }

    @Test func aHalfClosedClientStillGetsItsAnswer() throws {
        let test = try ScoringHandlerTests(holding: true)
        test.send(Self.post("/A", "{}"))
        test.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        test.scorer.finish()
        #expect(Self.answers(try test.received()) == ["1 200 OK {\"route\":\"A\",\"bytes\":2}"])
    }

    @Test func keepAliveStaysOpenAndConnectionCloseGoesToHummingbirdWhichCloses() throws {
        let test = try ScoringHandlerTests()
        test.send(Self.post("/A", "{}"))
        test.send(Self.post("/B", "{}"))
        #expect(Self.answers(try test.received()).count == 2)
        #expect(test.channel.isActive)
        test.send(Self.post("/C", "{}", headers: "Connection: close\r\n"))
        // A request that ends its connection is Hummingbird's, which closes after the answer.
        #expect(test.scorer.scored.map(\.route) == ["A", "B"])
        #expect(Self.answers(try test.received()) == ["1 200 OK hummingbird /C"])
        #expect(!test.channel.isActive)
    }

    @Test func http10IsAnsweredAs10AndClosesUnlessKeptAlive() throws {
        let kept = try ScoringHandlerTests()
        kept.send("POST /A HTTP/1.0\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}")
        let text = try kept.received()
        #expect(text.hasPrefix("HTTP/1.0 200 OK"), "\(text)")
        #expect(text.lowercased().contains("connection: keep-alive"))
        #expect(kept.channel.isActive)

        let closed = try ScoringHandlerTests()
        closed.send("POST /A HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
        #expect(try closed.received().hasPrefix("HTTP/1.0 200 OK"))
        #expect(!closed.channel.isActive)
    }

    @Test func expect100ContinueGetsContinueThenTheAnswerOr417() throws {
        let test = try ScoringHandlerTests()
        test.send("POST /A HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        #expect(try test.received().hasPrefix("HTTP/1.1 100 Continue"))
        test.send("{}")
        #expect(Self.answers(try test.received()) == ["1 200 OK {\"route\":\"A\",\"bytes\":2}"])

        let refused = try ScoringHandlerTests(maxBodyBytes: 100)
        refused.send("POST /A HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        let text = try refused.received()
        #expect(text.hasPrefix("HTTP/1.1 417"), "\(text)")
        #expect(text.contains("expectation_failed"))
        #expect(refused.scorer.scored.isEmpty)
        #expect(!refused.channel.isActive)
    }

    @Test func aDrainAnswersTheRequestsInFlightAndReceivedThenCloses() throws {
        let test = try ScoringHandlerTests(holding: true)
        test.send(Self.post("/A", "{}") + Self.post("/B", "{}"))
        test.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(test.channel.isActive, "a stop waits for the row in flight")
        test.scorer.finish()
        #expect(test.channel.isActive, "and for the request received behind it")
        test.scorer.finish()
        let text = try test.received()
        #expect(Self.answers(text).count == 2)
        #expect(text.lowercased().components(separatedBy: "connection: close").count == 2, "the last answer says close: \(text)")
        #expect(!test.channel.isActive)
    }

    @Test func anIdleConnectionClosesAtOnceOnADrain() throws {
        let test = try ScoringHandlerTests()
        test.send(Self.post("/A", "{}"))
        #expect(Self.answers(try test.received()).count == 1)
        test.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!test.channel.isActive)
    }
}

/// `ScoringStateMachine` as values: the events of a connection in, the actions out.
struct ScoringStateMachineTests {
    static func machine() -> ScoringStateMachine {
        ScoringStateMachine(maxBodyBytes: 10) { head in head.method == .post ? .model(String(head.path?.dropFirst() ?? "")) : nil }
    }

    static func head(_ method: HTTPRequest.Method, _ path: String) -> HTTPRequestPart {
        .head(HTTPRequest(method: method, scheme: nil, authority: nil, path: path))
    }

    @Test func aRowIsReadScoredAndAnswered() {
        var machine = Self.machine()
        let head = machine.received(Self.head(.post, "/A"))
        #expect(head == nil)
        let body = machine.received(.body(ByteBuffer(string: "{}")))
        #expect(body == nil)
        let end = machine.received(.end(nil))
        guard case .score(let route, let scored, _) = end else {
            Issue.record("\(String(describing: end))")
            return
        }
        #expect(route == .model("A") && scored == ByteBuffer(string: "{}"))
        #expect(machine.isScoring)
        let answered = machine.answered(isWritable: true)
        #expect(!answered.closing && answered.then.isEmpty, "a quiet connection: the answer alone")
    }

    @Test func readingPausesWhileARowIsScoredAndWhileTheClientDoesNotRead() {
        var machine = Self.machine()
        _ = machine.received(Self.head(.post, "/A"))
        _ = machine.received(.end(nil))
        let whileScoring = machine.readCalled(isWritable: true)
        #expect(whileScoring == nil, "no read while the row is scored")
        let answered = machine.answered(isWritable: false)
        #expect(answered.then.isEmpty, "not writable: still no read")
        let writable = machine.writabilityChanged(isWritable: true)
        #expect(writable == .read)
        let notWritable = machine.readCalled(isWritable: false)
        #expect(notWritable == nil)
        let writableAgain = machine.writabilityChanged(isWritable: true)
        #expect(writableAgain == .read)
        let read = machine.readCalled(isWritable: true)
        #expect(read == .read)
    }

    @Test func aReadAskedForWhileScoringFollowsTheAnswer() {
        var machine = Self.machine()
        _ = machine.received(Self.head(.post, "/A"))
        _ = machine.received(.end(nil))
        _ = machine.readCalled(isWritable: true)
        let answered = machine.answered(isWritable: true)
        #expect(answered.then == [.read])
    }

    @Test func whileHummingbirdOwesAnAnswerScoringRequestsGoToItToo() {
        var machine = Self.machine()
        let get = machine.received(Self.head(.get, "/"))
        #expect(get == .forward(Self.head(.get, "/")))
        let end = machine.received(.end(nil))
        #expect(end == .forward(.end(nil)))
        #expect(machine.owed == 1)
        let post = machine.received(Self.head(.post, "/A"))
        #expect(post == .forward(Self.head(.post, "/A")), "behind an answer Hummingbird owes")
        _ = machine.received(.end(nil))
        machine.responseEnded()
        machine.responseEnded()
        #expect(machine.owed == 0)
        let scored = machine.received(Self.head(.post, "/B"))
        #expect(scored == nil, "scored here again")
    }

    @Test func aBodyPastTheLimitIsDroppedAndScoredAsTooLarge() {
        var machine = Self.machine()
        _ = machine.received(Self.head(.post, "/A"))
        _ = machine.received(.body(ByteBuffer(string: "123456")))
        _ = machine.received(.body(ByteBuffer(string: "789012")))
        guard case .score(_, let body, _) = machine.received(.end(nil)) else {
            Issue.record("not scored")
            return
        }
        #expect(body == nil)
    }

    @Test func aStopDuringARowClosesAfterTheRequestsReceived() {
        var machine = Self.machine()
        _ = machine.received(Self.head(.post, "/A"))
        _ = machine.received(.end(nil))
        _ = machine.received(Self.head(.get, "/"))
        _ = machine.received(.end(nil))
        let stopped = machine.quiesce()
        #expect(!stopped, "the stop waits for the row")
        let answered = machine.answered(isWritable: true)
        #expect(!answered.closing)
        #expect(answered.then == [.forward(Self.head(.get, "/")), .forward(.end(nil)), .readComplete, .quiesceHummingbird])
    }

    @Test func aParseErrorBehindARowClosesAfterItsAnswer() {
        var machine = Self.machine()
        _ = machine.received(Self.head(.post, "/A"))
        _ = machine.received(.end(nil))
        let error = machine.parseError(error: HTTPParserError.invalidVersion)
        #expect(error == [])
        let answered = machine.answered(isWritable: true)
        #expect(answered.closing && answered.then == [.close])
    }
}
