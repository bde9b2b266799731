import Logging
import NIOCore
import ServingCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The connections the server holds, against `MAX_CONNECTIONS`: shared by every connection.
///
/// A connection over the limit is refused at once (a 503 and a close), counted in
/// `autoserve_connections_refused_total`, and said in the log once a minute at most.
final class ConnectionLimiter: Sendable {
    let limit: Int
    let metrics: Metrics
    let logger: Logger
    private let state = Mutex<(open: Int, lastWarning: Int)>((0, 0))
    /// The connections open now, so that a drain can reach each of them.
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let draining = Atomic<Bool>(false)

    init(limit: Int, metrics: Metrics, logger: Logger) {
        self.limit = limit
        self.metrics = metrics
        self.logger = logger
    }

    /// Takes a slot for a new connection; `false` when every slot is taken.
    func acquire() -> Bool {
        let (taken, warn) = state.withLock { state -> (Bool, Bool) in
            guard state.open < limit else {
                let now = Int(time(nil))
                let warn = now - state.lastWarning >= 60
                if warn { state.lastWarning = now }
                return (false, warn)
            }
            state.open += 1
            return (true, false)
        }
        if !taken {
            metrics.increment("autoserve_connections_refused_total")
            if warn {
                logger.warning(
                    "connection refused: MAX_CONNECTIONS reached",
                    metadata: [
                        "max_connections": "\(limit)", "hint": "raise MAX_CONNECTIONS (and the descriptor limit) or put a proxy in front",
                    ])
            }
        }
        return taken
    }

    func release() {
        state.withLock { $0.open -= 1 }
    }

    func opened(_ channel: any Channel) {
        channels.withLock { $0[ObjectIdentifier(channel)] = channel }
    }

    func closed(_ channel: any Channel) {
        _ = channels.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Whether the server is draining: `/readyz` answers 503 and every answer closes its connection.
    var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Starts the drain (docs/configuration.md, "Configuration": `SHUTDOWN_DELAY`): idle connections close now, busy ones after
    /// their answer (which says `Connection: close`), and so does every connection opened from now on.
    func drain() {
        draining.store(true, ordering: .relaxed)
        for channel in channels.withLock({ Array($0.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    /// Sets `autoserve_connections_open` (before a scrape).
    func publish() {
        metrics.set("autoserve_connections_open", to: Double(state.withLock { $0.open }))
    }
}

/// How long a client may take: to send a request's head, between two parts of its body, and to start its next
/// request on a kept-alive connection (nginx's `client_header_timeout`, `client_body_timeout`,
/// `keepalive_timeout`).
public struct ConnectionTimeouts: Sendable {
    public var header: Duration = .seconds(10)
    public var body: Duration = .seconds(30)
    public var keepAlive: Duration = .seconds(60)

    public init() {}
}

/// The first handler of every connection: takes its slot under `MAX_CONNECTIONS` and enforces the read and idle
/// timeouts, so that idle, slow (slowloris) and abandoned connections cannot pile up until the server runs out of
/// descriptors.
///
/// It sees the raw bytes; `HTTP1CompatibilityHandler`, which sees the parsed requests, tells it where each
/// request and answer begins and ends.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// Where the connection is between requests, and which timer runs.
    private enum Phase {
        /// No byte of a next request yet: the keep-alive timer (the header timer on a new connection).
        case waiting
        /// Bytes of a request head arrived, the head is not complete: the header timer.
        case readingHead
        /// The head is complete, the body is not: the body timer, re-armed at each part.
        case readingBody
        /// Every request received is being answered: no timer (the model's timeout governs).
        case answering
    }

    let limiter: ConnectionLimiter
    let timeouts: ConnectionTimeouts
    private var started = false
    private var acquired = false
    /// Whether this connection was told to close after its answers (the drain).
    private var quiesced = false
    /// Set once a refusal or a 408 was written and the sending side closed: what the client still sends is read
    /// and dropped until it closes, or for `lingerTimeout` at most.
    private var lingering = false
    /// How long a connection that got a refusal or a 408 is read and its bytes dropped (nginx's
    /// `lingering_timeout`): a close while the client still sends makes the kernel reset the connection, and a
    /// reset throws away the answer the client has not read yet.
    static let lingerTimeout = TimeAmount.seconds(5)
    private var phase = Phase.waiting
    /// Requests received whose answers have not ended.
    private var unanswered = 0
    private var timer: Scheduled<Void>?
    /// When the timer fires, and the deadline it serves (with its phase's name): the deadline may be later.
    private var scheduledFor: NIODeadline?
    private var deadline: (due: NIODeadline, name: String)?
    private var context: ChannelHandlerContext?

    init(limiter: ConnectionLimiter, timeouts: ConnectionTimeouts) {
        self.limiter = limiter
        self.timeouts = timeouts
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    /// Takes the connection's slot, or refuses it; then the header timer runs until its first request's head.
    private func start(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        guard limiter.acquire() else {
            refuse(context: context)
            return
        }
        acquired = true
        limiter.opened(context.channel)
        arm(timeouts.header, phase: "header", context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
        if acquired {
            acquired = false
            limiter.release()
            limiter.closed(context.channel)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if lingering { return }
        if case .waiting = phase {
            phase = .readingHead
            arm(timeouts.header, phase: "header", context: context)
        }
        context.fireChannelRead(data)
    }

    // MARK: - Events from the HTTP layer

    func requestHeadReceived() {
        // A connection opened during the drain answers its request, then closes. The event goes out once the head
        // has passed through the pipeline, so that the handlers after this one know a request is in progress.
        if limiter.isDraining, !quiesced, let context {
            quiesced = true
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.eventLoop.execute { bound.value.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
        }
        phase = .readingBody
        if let context { arm(timeouts.body, phase: "body", context: context) }
    }

    func requestBodyReceived() {
        if case .readingBody = phase, let context { arm(timeouts.body, phase: "body", context: context) }
    }

    func requestEnded() {
        unanswered += 1
        phase = .answering
        disarm()
    }

    func answerEnded() {
        unanswered = max(0, unanswered - 1)
        guard unanswered == 0, case .answering = phase, let context else { return }
        phase = .waiting
        arm(timeouts.keepAlive, phase: "keepalive", context: context)
    }

    // MARK: - Timers

    /// Sets the deadline of the current phase. A request moves the deadline two or three times, so that costs a
    /// clock read, not a timer: one timer per connection fires at the earliest deadline set, and moves itself on
    /// when the deadline moved later meanwhile.
    private func arm(_ duration: Duration, phase name: String, context: ChannelHandlerContext) {
        let due = NIODeadline.now() + .nanoseconds(duration.nanoseconds)
        deadline = (due, name)
        if let scheduledFor, scheduledFor <= due { return }
        schedule(at: due, context: context)
    }

    /// No deadline while every request received is being answered.
    private func disarm() {
        deadline = nil
    }

    private func schedule(at due: NIODeadline, context: ChannelHandlerContext) {
        timer?.cancel()
        scheduledFor = due
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: due) {
            bound.value.0.timerFired(context: bound.value.1)
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer = nil
        scheduledFor = nil
        guard let (due, name) = deadline else { return }
        if due > NIODeadline.now() {
            schedule(at: due, context: context)
        } else {
            deadline = nil
            expired(name, context: context)
        }
    }

    private func expired(_ name: String, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        limiter.metrics.increment("autoserve_connections_timed_out_total", labels: [name])
        let midRequest: Bool
        switch phase {
        case .readingHead, .readingBody: midRequest = true
        case .waiting, .answering: midRequest = false
        }
        if midRequest, unanswered == 0 {
            let error = APIError(
                status: 408, code: "request_timeout",
                message:
                    "the request did not arrive in time (\(name) timeout); send the whole request at once, or raise \(name == "header" ? "HEADER_TIMEOUT" : "BODY_TIMEOUT")"
            )
            writeAndClose(error, context: context)
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: - Raw answers

    private func refuse(context: ChannelHandlerContext) {
        let error = APIError(
            status: 503, code: "too_many_connections",
            message: "the server holds its maximum of \(limiter.limit) connections; retry shortly"
        )
        writeAndClose(error, context: context)
    }

    /// Writes a whole answer as bytes (this handler is below the HTTP encoder) and closes: the sending side at
    /// once, the whole connection when the client closes its side or after `lingerTimeout`.
    private func writeAndClose(_ error: APIError, context: ChannelHandlerContext) {
        let body = error.bodyBytes
        let reason = error.status.code == 408 ? "Request Timeout" : "Service Unavailable"
        let head =
            "HTTP/1.1 \(error.status.code) \(reason)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\nServer: autoserve\r\n"
            + "X-Request-ID: \(RequestID.make())\r\n\r\n"
        let channel = context.channel
        lingering = true
        timer?.cancel()
        timer = nil
        deadline = nil
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(bytes: Array(head.utf8) + body)))).whenComplete { result in
            guard case .success = result else { return channel.close(promise: nil) }
            channel.close(mode: .output).whenFailure { _ in channel.close(promise: nil) }
            channel.eventLoop.scheduleTask(in: Self.lingerTimeout) { channel.close(promise: nil) }
        }
    }
}
