#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The framed protocol between the server and a worker process, over a Unix socket pair.
///
/// Every frame is `[UInt32 length][UInt64 id][UInt8 code][payload]`, little-endian, where `length` counts
/// the id, the code and the payload. The server sends `code 1` (predict) with the variables' JSON bytes; the
/// worker answers with the same id and the plugin's status code (`PluginStatus`) and the output or the message.
/// Frame id 0 is the worker's hello: `WorkerFrame.started` once its model is loaded, or `WorkerFrame.startFailed`
/// with the reason. A call that runs longer than a millisecond is announced with `WorkerFrame.running` before its
/// answer. Requests are multiplexed: answers come back in any order.
public struct WorkerFrame: Sendable {
    public static let predict: UInt8 = 1
    /// Server to worker: score the row and explain the score (docs/explanations.md).
    public static let explain: UInt8 = 2
    public static let started: UInt8 = 0
    public static let startFailed: UInt8 = 255
    /// Worker to server, no payload: the call of this id has been running for a while (``WorkerLoop``'s hand-over
    /// time). A row's timeout counts from here, so that a row that waited behind slow ones never looks hung.
    public static let running: UInt8 = 254
    /// The largest frame either side accepts (64 MiB); a larger length means the stream is corrupt.
    public static let maximumLength = 64 << 20
    /// The largest payload of a frame: an output, or the variables of a row.
    public static let maximumPayload = maximumLength - 9

    public var id: UInt64
    public var code: UInt8
    public var payload: [UInt8]

    public init(id: UInt64, code: UInt8, payload: [UInt8]) {
        self.id = id
        self.code = code
        self.payload = payload
    }

    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(13 + payload.count)
        append(to: &bytes)
        return bytes
    }

    /// Appends the frame's bytes, so that several frames go out in one write.
    public func append(to bytes: inout [UInt8]) {
        withUnsafeBytes(of: UInt32(9 + payload.count).littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: id.littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(code)
        bytes.append(contentsOf: payload)
    }

    /// Writes a whole frame; `false` when the other side is gone.
    public static func write(_ frame: WorkerFrame, to descriptor: Int32) -> Bool {
        write(frame.encoded(), to: descriptor)
    }

    /// Writes whole frames' bytes; `false` when the other side is gone.
    public static func write(_ bytes: [UInt8], to descriptor: Int32) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if written < 0, errno == EINTR { continue }
            if written < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                // The server's end is non-blocking (its answers are read by an event loop): wait for room.
                var waiting = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&waiting, 1, -1)
                continue
            }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }
}

/// Reads frames from one descriptor through a buffer: under load one `read` brings several frames.
public struct FrameReader {
    public let descriptor: Int32
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0

    public init(descriptor: Int32, capacity: Int = 64 << 10) {
        self.descriptor = descriptor
        buffer = [UInt8](repeating: 0, count: capacity)
    }

    /// Whether a whole frame is already buffered, so that `next()` returns without reading.
    public var hasFrame: Bool {
        guard end - start >= 4 else { return false }
        let length = buffer.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: start, as: UInt32.self))) }
        return end - start >= 4 + length
    }

    /// The next frame; `nil` at end of stream, on a read error or on a corrupt length.
    public mutating func next() -> WorkerFrame? {
        while true {
            if end - start >= 4 {
                let length = buffer.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: start, as: UInt32.self))) }
                guard length >= 9, length <= WorkerFrame.maximumLength else { return nil }
                if end - start >= 4 + length {
                    let body = start + 4
                    let id = buffer.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: body, as: UInt64.self)) }
                    let frame = WorkerFrame(id: id, code: buffer[body + 8], payload: Array(buffer[(body + 9)..<(body + length)]))
                    start += 4 + length
                    if start == end { (start, end) = (0, 0) }
                    return frame
                }
                makeRoom(for: 4 + length)
            } else {
                makeRoom(for: 4)
            }
            let got = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + end, $0.count - end) }
            if got < 0, errno == EINTR { continue }
            guard got > 0 else { return nil }
            end += got
        }
    }

    /// Moves the unread bytes to the front, and grows the buffer when one frame is larger than it.
    private mutating func makeRoom(for frameSize: Int) {
        if start > 0, buffer.count - start < frameSize || end == buffer.count {
            buffer.withUnsafeMutableBytes { bytes in
                bytes.baseAddress!.copyMemory(from: bytes.baseAddress! + start, byteCount: end - start)
            }
            (start, end) = (0, end - start)
        }
        if buffer.count < frameSize { buffer.append(contentsOf: repeatElement(0, count: frameSize - buffer.count)) }
    }
}
