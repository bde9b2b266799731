#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The framed protocol between the server and a worker process, over a Unix socket pair.
///
/// Every frame is `[UInt32 length][UInt64 id][UInt8 code][payload]`, little-endian, where `length` counts
/// the id, the code and the payload. The server sends `code 1` (predict) with the variables' JSON bytes; the
/// worker answers with the same id and the plugin's status code (0 output, 1 invalid variables, 2 invalid
/// input, 3 model error) and the output or the message. Frame id 0 is the worker's hello: code 0 once its model
/// is loaded, or `WorkerFrame.startFailed` with the reason. Requests are multiplexed: answers come back in any
/// order.
struct WorkerFrame {
    static let predict: UInt8 = 1
    static let startFailed: UInt8 = 255
    /// The largest frame either side accepts (64 MiB); a larger length means the stream is corrupt.
    static let maximumLength = 64 << 20

    var id: UInt64
    var code: UInt8
    var payload: [UInt8]

    func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(13 + payload.count)
        withUnsafeBytes(of: UInt32(9 + payload.count).littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: id.littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(code)
        bytes.append(contentsOf: payload)
        return bytes
    }

    /// Reads one frame; `nil` at end of stream or on a corrupt length.
    static func read(from descriptor: Int32) -> WorkerFrame? {
        guard let header = readExactly(descriptor, 4) else { return nil }
        let length = Int(header.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) })
        guard length >= 9, length <= maximumLength, let body = readExactly(descriptor, length) else { return nil }
        let id = body.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        return WorkerFrame(id: id, code: body[8], payload: Array(body[9...]))
    }

    /// Writes a whole frame; `false` when the other side is gone.
    static func write(_ frame: WorkerFrame, to descriptor: Int32) -> Bool {
        let bytes = frame.encoded()
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    static func readExactly(_ descriptor: Int32, _ count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let got = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + offset, count - offset) }
            if got < 0, errno == EINTR { continue }
            guard got > 0 else { return nil }
            offset += got
        }
        return buffer
    }
}
