import NIOCore
import PluginRuntime

/// Cuts the worker's byte stream into frames (`WorkerFrame`); a corrupt length ends the connection.
struct WorkerFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = WorkerFrame

    struct CorruptStream: Error {}

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else { return .needMoreData }
        guard length >= 9, length <= WorkerFrame.maximumLength else { throw CorruptStream() }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        guard let id = buffer.readInteger(endianness: .little, as: UInt64.self), let code = buffer.readInteger(as: UInt8.self),
            let payload = buffer.readBytes(length: Int(length) - 9)
        else { throw CorruptStream() }
        context.fireChannelRead(wrapInboundOut(WorkerFrame(id: id, code: code, payload: payload)))
        return .continue
    }
}

/// Hands the worker's frames to its connection: the hello at once, the answers of one read together (one lock
/// for all of them); the end of the stream, or a corrupt frame, ends the connection.
final class WorkerChannelHandler: ChannelInboundHandler {
    typealias InboundIn = WorkerFrame

    let connection: WorkerConnection
    private var answers: [WorkerFrame] = []

    init(connection: WorkerConnection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.id == 0 {
            connection.greeted(frame)
        } else {
            answers.append(frame)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard !answers.isEmpty else { return }
        let delivered = answers
        answers.removeAll(keepingCapacity: true)
        connection.deliver(answers: delivered)
    }

    func channelInactive(context: ChannelHandlerContext) {
        channelReadComplete(context: context)
        connection.ended(on: context.eventLoop)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
