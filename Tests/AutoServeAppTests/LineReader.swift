import AutoServeApp
import Foundation
import ServingCore
import Testing

/// The lines a child process prints, one at a time, read off the concurrency pool.
final class LineReader: @unchecked Sendable {
    /// Touched only from the reading threads, one at a time (each `next()` awaits the one before).
    private var buffer = Data()
    let handle: FileHandle

    init(_ handle: FileHandle) {
        self.handle = handle
    }

    /// The next line, or `nil` at the end of the output.
    func next() async -> String? {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { [self] in
                while true {
                    if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                        buffer = Data(buffer[buffer.index(after: newline)...])
                        continuation.resume(returning: line)
                        return
                    }
                    let chunk = handle.availableData
                    guard !chunk.isEmpty else {
                        continuation.resume(returning: nil)
                        return
                    }
                    buffer += chunk
                }
            }
        }
    }
}
