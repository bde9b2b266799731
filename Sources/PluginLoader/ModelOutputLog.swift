import Logging
import NIOCore
import NIOPosix
import ServingCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What a model prints (its workers' standard output and error), logged one line per event:
/// `msg="…" model=Iris stream=stdout`.
///
/// A worker's output arrives on pipes of its own, read on the server's event loops, so a model's `print` is never
/// glued to a line of the server's log and what a killed worker had written still shows. Lines are capped at
/// `maximumLineBytes` and each model at `linesPerSecond`; the lines dropped are counted
/// (`autoserve_model_output_dropped_lines_total{model}`) and said once a second at most.
final class ModelOutputLog: Sendable {
    static let maximumLineBytes = 4096
    static let linesPerSecond = 100

    let model: String
    let logger: Logger
    let metrics: Metrics?
    /// The current second and the lines logged and dropped in it.
    private let window = Mutex<(second: Int, logged: Int, dropped: Int)>((0, 0, 0))

    init(model: String, logger: Logger, metrics: Metrics?) {
        self.model = model
        self.logger = logger
        self.metrics = metrics
    }

    func log(_ line: String, stream: String) {
        let second = Int(time(nil))
        let (allowed, droppedBefore) = window.withLock { window -> (Bool, Int) in
            var dropped = 0
            if window.second != second {
                dropped = window.dropped
                window = (second, 0, 0)
            }
            guard window.logged < Self.linesPerSecond else {
                window.dropped += 1
                return (false, dropped)
            }
            window.logged += 1
            return (true, dropped)
        }
        if droppedBefore > 0 {
            logger.warning("model output dropped: over \(Self.linesPerSecond) lines a second", metadata: ["model": "\(model)", "dropped": "\(droppedBefore)"])
        }
        guard allowed else {
            metrics?.increment("autoserve_model_output_dropped_lines_total", labels: [model])
            return
        }
        logger.info("\(line)", metadata: ["model": "\(model)", "stream": "\(stream)"])
    }

    /// Reads one of a worker's output pipes on an event loop, a line at a time, until the worker closes it.
    func attach(_ descriptor: Int32, stream: String) {
        NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(OutputLineDecoder(log: self, stream: stream)))
                }
            }
            .takingOwnershipOfDescriptor(input: descriptor)
            .whenFailure { _ in close(descriptor) }
    }
}

/// Cuts a byte stream into lines (a line longer than the cap is logged in pieces of the cap, marked `…`).
struct OutputLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = Never

    let log: ModelOutputLog
    let stream: String

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - buffer.readerIndex
            let line = buffer.readString(length: min(length, ModelOutputLog.maximumLineBytes)) ?? ""
            if length > ModelOutputLog.maximumLineBytes {
                buffer.moveReaderIndex(forwardBy: length - ModelOutputLog.maximumLineBytes)
                log.log(line + "…", stream: stream)
            } else {
                log.log(line, stream: stream)
            }
            buffer.moveReaderIndex(forwardBy: 1)
            return .continue
        }
        if buffer.readableBytes >= ModelOutputLog.maximumLineBytes {
            log.log((buffer.readString(length: ModelOutputLog.maximumLineBytes) ?? "") + "…", stream: stream)
            return .continue
        }
        return .needMoreData
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0, let rest = buffer.readString(length: buffer.readableBytes) { log.log(rest, stream: stream) }
        return .needMoreData
    }
}
