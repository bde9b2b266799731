import NIOCore
import NIOHTTP1

/// What HTTP/1 says about a request that the version-less HTTP types after it cannot carry: the protocol
/// version and `Expect: 100-continue`.
///
/// It sits between NIO's HTTP/1 codec and the conversion to Swift HTTP Types, where the request's version is
/// still known:
/// - an HTTP/1.0 request is answered as HTTP/1.0, and the connection closes after the answer unless the client
///   asked for `Connection: keep-alive` (then the answer says `keep-alive` too);
/// - `Expect: 100-continue` gets `100 Continue` at once, or `417 Expectation Failed` (and the connection closes)
///   when the declared body is over `MAX_BODY_BYTES`, so the client never sends a body that would be refused;
///   any other expectation gets 417 (an empty `Expect:` expects nothing and is ignored). The header is then removed:
///   the request goes on as an ordinary one.
final class HTTP1CompatibilityHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// How to answer one request: its version and whether the connection stays open after the answer.
    private struct Answering {
        var version: HTTPVersion
        var keepAlive: Bool
    }

    let maxBodyBytes: Int
    /// Told where requests and answers begin and end, for its timeouts.
    let connectionGuard: ConnectionGuard?
    /// The requests received and not answered yet, in order (HTTP/1.1 pipelining keeps answers in that order).
    private var pending = CircularBuffer<Answering>()
    /// Set when the answer in progress is the last one on this connection.
    private var closeAfterAnswer = false
    /// The request whose expectation was refused: its body parts, if any come, are dropped.
    private var refusing = false
    /// Set on graceful shutdown.
    private var stopping = false

    init(maxBodyBytes: Int, connectionGuard: ConnectionGuard?) {
        self.maxBodyBytes = maxBodyBytes
        self.connectionGuard = connectionGuard
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch part {
        case .head: connectionGuard?.requestHeadReceived()
        case .body: connectionGuard?.requestBodyReceived()
        case .end: connectionGuard?.requestEnded()
        }
        switch part {
        case .head(var head):
            refusing = false
            let keepAlive =
                head.version.major == 1 && head.version.minor == 0
                ? head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "keep-alive" }
                : head.isKeepAlive
            if let expectation = head.headers.first(name: "expect"), !expectation.allSatisfy(\.isWhitespace) {
                head.headers.remove(name: "expect")
                guard let refusal = refusal(of: expectation, head: head) else {
                    if head.version.major == 1 && head.version.minor >= 1 {
                        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
                    }
                    pending.append(Answering(version: head.version, keepAlive: keepAlive))
                    context.fireChannelRead(wrapInboundOut(.head(head)))
                    return
                }
                refusing = true
                refuse(refusal, head: head, context: context)
                return
            }
            pending.append(Answering(version: head.version, keepAlive: keepAlive))
            if head.headers.contains(name: "expect") {
                head.headers.remove(name: "expect")
                context.fireChannelRead(wrapInboundOut(.head(head)))
                return
            }
            // Unchanged: passed on as it came (wrapping it again would box the head anew).
            context.fireChannelRead(data)
        case .body, .end:
            if refusing { return }
            context.fireChannelRead(data)
        }
    }

    /// Why an expectation is refused, or `nil` when the body may come.
    private func refusal(of expectation: String, head: HTTPRequestHead) -> String? {
        guard expectation.lowercased() == "100-continue" else {
            return "the server meets no expectation but 100-continue; send the request without 'Expect: \(expectation)'"
        }
        if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > maxBodyBytes {
            return "the body would be larger than \(maxBodyBytes) bytes; send a smaller row (or fewer rows in a batch) or raise MAX_BODY_BYTES"
        }
        return nil
    }

    /// Answers 417 with the JSON error body and closes the connection: the body the client holds back is
    /// never read.
    private func refuse(_ message: String, head request: HTTPRequestHead, context: ChannelHandlerContext) {
        let version = request.version
        let body = APIError(status: 417, code: "expectation_failed", message: message).bodyBytes
        var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", String(body.count)), ("Connection", "close")])
        headers.add(name: "Server", value: "autoserve")
        headers.add(name: "X-Request-ID", value: RequestID.of(request.headers.first(name: "x-request-id")))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .expectationFailed, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    /// The server began to stop: the answer to the last request received says `Connection: close`.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent { stopping = true }
        context.fireUserInboundEventTriggered(event)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where head.status.code >= 200:
            // The common case passes untouched: an HTTP/1.1 keep-alive answer while the server runs.
            if !stopping, let answering = pending.first, answering.keepAlive, answering.version == .http1_1 {
                closeAfterAnswer = false
                break
            }
            // Stopping: the answer to the last request received says `close` (one after it could not be answered).
            if stopping, pending.count <= 1 { head.headers.replaceOrAdd(name: "connection", value: "close") }
            guard let answering = pending.first else {
                context.write(wrapOutboundOut(.head(head)), promise: promise)
                return
            }
            if answering.version != .http1_1 {
                head.version = answering.version
                if answering.keepAlive {
                    head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
                } else {
                    head.headers.replaceOrAdd(name: "connection", value: "close")
                }
            }
            closeAfterAnswer = !answering.keepAlive || head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "close" }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
            return
        case .end:
            guard !pending.isEmpty else { break }
            pending.removeFirst()
            connectionGuard?.answerEnded()
            if closeAfterAnswer {
                closeAfterAnswer = false
                let channel = context.channel
                context.writeAndFlush(data).whenComplete { result in
                    promise?.completeWith(result)
                    channel.close(promise: nil)
                }
                return
            }
        default:
            break
        }
        context.write(data, promise: promise)
    }
}
