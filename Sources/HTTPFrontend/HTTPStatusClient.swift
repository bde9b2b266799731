public import NIOCore
public import NIOHTTP1
public import NIOPosix
import Synchronization

/// The few HTTP requests AutoServe makes itself (a sync forwarded to a peer, the container's health check): one
/// HTTP/1.1 request on a connection of its own, over NIO's event loops, and the status of the answer.
///
/// NIO rather than AsyncHTTPClient: these requests need a status code and nothing else (no redirects, TLS, pooling or
/// body), and the server already runs NIO's loops. The health check, a process of its own, takes 47 ms a run here
/// against 39 ms with the blocking socket it replaced (starting NIO's loops; the rest is the process's start), once
/// per HEALTHCHECK interval (BENCHMARKS.md).
public enum HTTPStatusClient {
    /// The status of the answer to `method path` at `host`:`port`, or `nil` when none comes within `timeout`
    /// (connecting included).
    public static func status(
        host: String, port: Int, method: HTTPMethod = .GET, path: String, headers: [(String, String)] = [], timeout: TimeAmount,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async -> Int? {
        guard (1...65535).contains(port) else { return nil }
        let loop = group.next()
        let answer = StatusAnswer(promise: loop.makePromise(of: Int?.self))
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(StatusHandler(answer: answer))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            return nil
        }
        var fields = HTTPHeaders([("Host", host), ("Content-Length", "0"), ("Connection", "close")])
        fields.add(contentsOf: headers)
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: fields)), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let deadline = loop.scheduleTask(in: timeout) { answer.finish(nil) }
        let status = try? await answer.promise.futureResult.get()
        deadline.cancel()
        channel.close(promise: nil)
        return status ?? nil
    }

    /// The answer's status, completed once: by the response's head, the connection's end or the timeout.
    final class StatusAnswer: Sendable {
        let promise: EventLoopPromise<Int?>
        private let done = Atomic<Bool>(false)

        init(promise: EventLoopPromise<Int?>) { self.promise = promise }

        func finish(_ status: Int?) {
            guard !done.exchange(true, ordering: .relaxed) else { return }
            promise.succeed(status)
        }
    }

    final class StatusHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        let answer: StatusAnswer

        init(answer: StatusAnswer) { self.answer = answer }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .head(let head) = unwrapInboundIn(data) { answer.finish(Int(head.status.code)) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            answer.finish(nil)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            answer.finish(nil)
            context.close(promise: nil)
        }
    }
}
