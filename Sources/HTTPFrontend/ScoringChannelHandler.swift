import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import ServingCore

#if canImport(Glibc)
    import Glibc
#endif

/// What the scoring handler needs of `Scoring` (the handler's tests give it a stub).
protocol RowScoring: Sendable {
    var maxBodyBytes: Int { get }
    var serverName: String? { get }
    func scoringRoute(_ head: HTTPRequest) -> ScoringRoute?
    func score(_ route: ScoringRoute, body: ByteBuffer?, requestID: String, completion: @escaping @Sendable (Scoring.Answer) -> Void)
}

extension Scoring: RowScoring {}

/// Answers scoring requests (`POST <prefix>/<Model>`, `POST <prefix>/all` and the Open Inference Protocol's infer) in
/// the connection's channel pipeline, on its event loop, and hands every other request to Hummingbird behind it.
///
/// A request answered through Hummingbird's responder costs a task switch at each step (the request stream,
/// the responder, the response writer), more than the scoring itself; here the row goes from the HTTP
/// decoder to the model and the answer back to the encoder in callbacks. Answers are the ones the responder
/// gives (same `Scoring` code, same headers, same errors). What to do at each event is `ScoringStateMachine`'s
/// decision; this handler performs its actions on the channel. On a graceful shutdown a connection with a row in
/// flight is closed once it is answered (Hummingbird, which does not see these requests, would close it at once).
final class ScoringChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let scoring: any RowScoring
    private var machine: ScoringStateMachine
    private var clock = HTTPDate()

    /// The connection's limits and timeouts, put first in its pipeline when this handler is added.
    let connectionGuard: ConnectionGuard

    init(scoring: any RowScoring, connectionGuard: ConnectionGuard) {
        self.scoring = scoring
        self.connectionGuard = connectionGuard
        machine = ScoringStateMachine(maxBodyBytes: scoring.maxBodyBytes, route: scoring.scoringRoute)
    }

    /// Puts the `ConnectionGuard` first in the pipeline, where the raw bytes arrive, and the
    /// `HTTP1CompatibilityHandler` where the request's HTTP version is still known: before the conversion to HTTP
    /// types, which Hummingbird adds ahead of the additional handlers.
    func handlerAdded(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        try? pipeline.addHandler(connectionGuard, position: .first)
        guard let codec = try? pipeline.context(handlerType: HTTP1ToHTTPServerCodec.self) else { return }
        let compatibility = HTTP1CompatibilityHandler(maxBodyBytes: scoring.maxBodyBytes, connectionGuard: connectionGuard)
        try? pipeline.addHandler(compatibility, position: .before(codec.handler))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let action = machine.received(unwrapInboundIn(data)) { perform(action, context: context) }
    }

    private func perform(_ actions: [ScoringStateMachine.Action], context: ChannelHandlerContext) {
        for action in actions { perform(action, context: context) }
    }

    private func perform(_ action: ScoringStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .forward(let part): context.fireChannelRead(wrapInboundOut(part))
        case .score(let route, let body, let requestID):
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            scoring.score(route, body: body, requestID: requestID) { answer in
                if loop.inEventLoop {
                    bound.value.0.answered(answer, context: bound.value.1)
                } else {
                    loop.execute { bound.value.0.answered(answer, context: bound.value.1) }
                }
            }
        case .writeParseError(let answer): write(answer, closing: true, context: context)
        case .read: context.read()
        case .readComplete: context.fireChannelReadComplete()
        case .quiesceHummingbird: context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        case .close: context.close(promise: nil)
        }
    }

    /// A scoring answer: written, then the requests that came in meanwhile go on.
    private func answered(_ answer: Scoring.Answer, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let (closing, then) = machine.answered(isWritable: context.channel.isWritable)
        write(answer, closing: closing, context: context)
        perform(then, context: context)
    }

    private func write(_ answer: Scoring.Answer, closing: Bool, context: ChannelHandlerContext) {
        var fields = answer.headers
        fields[.contentType] = "application/json"
        if closing { fields[.connection] = "close" }
        fields[.contentLength] = String(answer.body.count)
        fields[.date] = clock.now()
        if let server = scoring.serverName { fields[.server] = server }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .init(code: answer.status), headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: answer.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, !machine.quiesce() { return }
        context.fireUserInboundEventTriggered(event)
    }

    func read(context: ChannelHandlerContext) {
        if let action = machine.readCalled(isWritable: context.channel.isWritable) { perform(action, context: context) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let action = machine.writabilityChanged(isWritable: context.channel.isWritable) { perform(action, context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// A request the HTTP decoder cannot parse (a bad request line, header or chunk size) ends the connection;
    /// when no answer is due on it, the client gets the JSON error body first, as for every other 400.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError, let actions = machine.parseError(error: error) else {
            context.fireErrorCaught(error)
            return
        }
        perform(actions, context: context)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // (Hummingbird also answers a request the decoder could not parse, which was never passed on.)
        if case .end = unwrapOutboundIn(data) { machine.responseEnded() }
        context.write(data, promise: promise)
    }
}

/// The `Date` header's value (RFC 9110), formatted once a second.
struct HTTPDate {
    private var second = 0
    private var text = ""

    mutating func now() -> String {
        let current = time(nil)
        if current != second {
            second = current
            text = Self.format(current)
        }
        return text
    }

    static func format(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
