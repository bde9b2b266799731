public import CoreMetrics
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The server's standard error, written by a thread of its own: a log line costs its caller (an event loop, a
/// worker's output reader) an append to a buffer, never a write that waits for whoever reads the output (a full pipe,
/// a log shipper that fell behind). Past `limit` bytes waiting, lines are dropped and counted
/// (`autoserve_log_lines_dropped_total`), and the next line written says how many.
public final class LogWriter: Sendable {
    /// The process's standard error (descriptor 2), 4 MiB of lines at most.
    public static let standardError = LogWriter(descriptor: 2, limit: 4 << 20)

    struct State {
        var pending: [UInt8] = []
        var dropped = 0
        /// The writer waits for `wake`; the next append signals it.
        var idle = false
        var started = false
    }

    let descriptor: Int32
    let limit: Int
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let dropCounter = Mutex<CoreMetrics.Counter?>(nil)

    init(descriptor: Int32, limit: Int) {
        self.descriptor = descriptor
        self.limit = limit
    }

    /// Counts the dropped lines in `counter` from now on.
    public func countDrops(in counter: CoreMetrics.Counter) {
        dropCounter.withLock { $0 = counter }
    }

    /// Queues `line` (which ends with a newline); drops it when the buffer is full.
    public func append(_ line: String) {
        let (accepted, signal, start) = state.withLock { state -> (Bool, Bool, Bool) in
            let start = !state.started
            state.started = true
            guard state.pending.count + line.utf8.count <= limit else {
                state.dropped += 1
                return (false, false, start)
            }
            state.pending.append(contentsOf: line.utf8)
            let signal = state.idle
            state.idle = false
            return (true, signal, start)
        }
        if start { startWriter() }
        if signal { wake.signal() }
        if !accepted { dropCounter.withLock { $0 }?.increment() }
    }

    /// Waits until every line queued so far is written, or `timeout` passed (at exit: the last lines, an error's
    /// among them, must not be lost).
    public func flush(timeout: Duration = .seconds(2)) {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let done = state.withLock { !$0.started || ($0.pending.isEmpty && $0.idle) }
            if done { return }
            usleep(1000)
        }
    }

    private func startWriter() {
        // Lines queued before an `exit` are written by it.
        atexit { LogWriter.standardError.flush() }
        let thread = Thread { [self] in run() }
        thread.name = "autoserve-log"
        thread.start()
    }

    private func run() {
        while true {
            let (bytes, dropped) = state.withLock { state -> ([UInt8], Int) in
                guard !state.pending.isEmpty else {
                    state.idle = true
                    return ([], 0)
                }
                defer {
                    state.pending = []
                    state.dropped = 0
                }
                return (state.pending, state.dropped)
            }
            guard !bytes.isEmpty else {
                wake.wait()
                continue
            }
            if dropped > 0 {
                let note =
                    "ts=\(LogfmtLogHandler.timestamp()) level=warning label=autoserve "
                    + "msg=\"log lines dropped: standard error was not read fast enough\" dropped=\(dropped)\n"
                write(Array(note.utf8))
            }
            write(bytes)
        }
    }

    /// Writes all of `bytes`, however many calls it takes; gives up on an error other than EINTR.
    private func write(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if count > 0 {
                offset += count
            } else if count < 0, errno == EINTR {
                continue
            } else {
                return
            }
        }
    }
}
