import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import ServingCore

#if canImport(Glibc)
    import Glibc
#endif

/// Answers scoring requests (`POST <prefix>/<Model>` and `POST <prefix>/all`) in the connection's channel
/// pipeline, on its event loop, and hands every other request to Hummingbird behind it.
///
/// A request answered through Hummingbird's responder costs a task switch at each step (the request stream,
/// the responder, the response writer), more than the scoring itself; here the row goes from the HTTP
/// decoder to the model and the answer back to the encoder in callbacks. Answers are the ones the responder
/// gives (same `Scoring` code, same headers, same errors). Responses keep the order of requests: while
/// Hummingbird owes an answer on this connection every request goes to it, and while a row is being scored
/// the next requests wait here (and reading stops). On a graceful shutdown a connection with a row in flight
/// is closed once it is answered (Hummingbird, which does not see these requests, would close it at once).
final class ScoringChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        case idle
        /// A scoring request whose body is being read; `tooLarge` once it passed the limit.
        case reading(route: String, body: ByteBuffer, tooLarge: Bool, requestID: String)
        /// The current request goes to Hummingbird, up to its end.
        case passing
        /// A row is with its model; further parts wait in `held`.
        case scoring
    }

    let scoring: Scoring
    private var state = State.idle
    /// Responses Hummingbird still owes on this connection.
    private var owed = 0
    private var held = CircularBuffer<HTTPRequestPart>()
    private var readRequested = false
    /// The server is shutting down: close once the row in flight is answered.
    private var closeWhenAnswered = false
    /// The server is stopping (graceful shutdown): the requests received are answered, then the connection closes.
    private var stopping = false
    private var clock = HTTPDate()

    /// The connection's limits and timeouts, put first in its pipeline when this handler is added.
    let connectionGuard: ConnectionGuard

    init(scoring: Scoring, connectionGuard: ConnectionGuard) {
        self.scoring = scoring
        self.connectionGuard = connectionGuard
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
        let part = unwrapInboundIn(data)
        if case .scoring = state {
            held.append(part)
        } else {
            handle(part, context: context)
        }
    }

    private func handle(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (state, part) {
        case (.idle, .head(let head)):
            if owed == 0, let route = scoring.scoringRoute(head) {
                let requestID = RequestID.of(head.headerFields[.requestID])
                if let length = head.headerFields[.contentLength].flatMap(Int.init), length > scoring.maxBodyBytes {
                    state = .reading(route: route, body: ByteBuffer(), tooLarge: true, requestID: requestID)
                } else {
                    state = .reading(route: route, body: context.channel.allocator.buffer(capacity: 0), tooLarge: false, requestID: requestID)
                }
            } else {
                owed += 1
                state = .passing
                context.fireChannelRead(wrapInboundOut(part))
            }
        case (.reading(let route, var body, var tooLarge, let requestID), .body(var chunk)):
            state = .idle  // lets `body` be appended to in place
            if !tooLarge, body.readableBytes + chunk.readableBytes > scoring.maxBodyBytes { tooLarge = true }
            if tooLarge { body.clear() } else { body.writeBuffer(&chunk) }
            state = .reading(route: route, body: body, tooLarge: tooLarge, requestID: requestID)
        case (.reading(let route, let body, let tooLarge, let requestID), .end):
            state = .scoring
            let loop = context.eventLoop
            let bound = NIOLoopBound((self, context), eventLoop: loop)
            scoring.score(route, body: tooLarge ? nil : body, requestID: requestID) { answer in
                if loop.inEventLoop {
                    bound.value.0.respond(answer, context: bound.value.1)
                } else {
                    loop.execute { bound.value.0.respond(answer, context: bound.value.1) }
                }
            }
        case (.passing, .end):
            state = .idle
            context.fireChannelRead(wrapInboundOut(part))
        case (.passing, _):
            context.fireChannelRead(wrapInboundOut(part))
        default:
            // A head inside a request, or a body before any head: the decoder never sends these; Hummingbird
            // answers them as it does.
            context.fireChannelRead(wrapInboundOut(part))
        }
    }

    /// Writes a scoring answer, then goes on with the requests that came in meanwhile.
    private func respond(_ answer: Scoring.Answer, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var fields = answer.headers
        fields[.contentType] = "application/json"
        if closeWhenAnswered, !stopping { fields[.connection] = "close" }
        fields[.contentLength] = String(answer.body.count)
        fields[.date] = clock.now()
        if let server = scoring.serverName { fields[.server] = server }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .init(code: answer.status), headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: answer.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        state = .idle
        if closeWhenAnswered, !stopping {
            held.removeAll()
            context.close(promise: nil)
            return
        }
        var replayed = false
        defer {
            // Hummingbird's side takes what it was given at the end of a read.
            if replayed { context.fireChannelReadComplete() }
        }
        // While the server stops, the requests already received are answered too (with `Connection: close`).
        while let part = held.popFirst() {
            replayed = true
            handle(part, context: context)
            if case .scoring = state { return }
        }
        if stopping {
            if case .passing = state {
                // Hummingbird answers the request it was given, then closes.
                context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            } else {
                context.close(promise: nil)
            }
            return
        }
        if readRequested, context.channel.isWritable {
            readRequested = false
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            switch state {
            case .reading, .scoring:
                stopping = true
                return
            case .idle, .passing:
                break
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Reading stops while a row is scored (later requests wait for its answer) and while the client does not
    /// read its answers (the channel is not writable: its unsent answers passed NIO's high-water mark), so a
    /// client that sends rows and never reads costs the server a bounded buffer, not memory without end.
    func read(context: ChannelHandlerContext) {
        if case .scoring = state {
            readRequested = true
        } else if !context.channel.isWritable {
            readRequested = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, readRequested, !isScoring {
            readRequested = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    private var isScoring: Bool {
        if case .scoring = state { return true }
        return false
    }

    /// A request the HTTP decoder cannot parse (a bad request line, header or chunk size) ends the connection;
    /// when no answer is due on it, the client gets the JSON error body first, as for every other 400.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        switch state {
        case .idle, .reading:
            guard owed == 0 else { break }
            var answer = APIError(
                status: 400, code: "invalid_http",
                message: "the request is not valid HTTP/1.1 (\(error)); check the request line, the headers and the body's framing"
            ).answer
            // A request that could not be read has no id of its own: the server makes one (docs/operations.md, "The inference log").
            answer.headers[.requestID] = RequestID.make()
            closeWhenAnswered = true
            respond(answer, context: context)
            return
        case .scoring:
            // The row in flight is answered first, then the connection closes.
            held.removeAll()
            closeWhenAnswered = true
            return
        case .passing:
            break
        }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // (Hummingbird also answers a request the decoder could not parse, which was never passed on.)
        if case .end = unwrapOutboundIn(data) { owed = max(0, owed - 1) }
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
