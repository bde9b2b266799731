import AutoServeModel
import CSystemShims
import CoreMetrics
public import Foundation
public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How the inference log is written (README, "The inference log").
public struct InferenceLogSettings: Sendable {
    public var path: String
    /// The fraction of rows kept, from 0 to 1.
    public var sample: Double = 1
    /// The size after which the file is rotated.
    public var maxBytes: Int = 100 << 20
    /// How many rotated files are kept (`<path>.1` is the newest).
    public var keep: Int = 5
    /// The most rows, and bytes of rows, waiting for the writer; more are dropped and counted.
    public var queueLimit: Int = 20_000
    public var queueBytes: Int = 16 << 20

    public init(path: String) {
        self.path = path
    }
}

/// One scored row as the inference log keeps it: captured on the request path as bytes the server already has,
/// and turned into a JSON line by the writer.
public struct InferenceRecord: Sendable {
    public enum Route: String, Sendable {
        case model, all
    }

    public var time: Date
    public var requestID: String
    public var model: String
    public var version: String?
    public var commit: String?
    public var route: Route
    /// The `variables` object as received (validated JSON), or `nil` when the body had none.
    public var variables: [UInt8]?
    /// The model's output object, for a row it answered.
    public var output: [UInt8]?
    /// The error object (`{"status", "code", "message"}`), for a row it did not.
    public var error: [UInt8]?
    public var status: Int
    public var latency: Duration

    public init(
        time: Date, requestID: String, model: String, version: String?, commit: String?, route: Route, variables: [UInt8]?, output: [UInt8]?,
        error: [UInt8]?, status: Int, latency: Duration
    ) {
        self.time = time
        self.requestID = requestID
        self.model = model
        self.version = version
        self.commit = commit
        self.route = route
        self.variables = variables
        self.output = output
        self.error = error
        self.status = status
        self.latency = latency
    }

    /// About what the record holds in memory, for the queue's bound.
    var size: Int { 200 + requestID.utf8.count + (variables?.count ?? 0) + (output?.count ?? 0) + (error?.count ?? 0) }

    /// The record as one line of JSON, newline included.
    ///
    /// `variables`, `output` and `error` are valid JSON already; a raw line feed or carriage return in valid JSON
    /// can only be whitespace between tokens (inside strings they are escaped), so dropping them keeps the value
    /// and the line whole.
    public func line(into bytes: inout [UInt8]) {
        bytes.append(contentsOf: #"{"time":""#.utf8)
        bytes.append(contentsOf: Self.timestamp(time).utf8)
        bytes.append(contentsOf: #"","request_id":"#.utf8)
        JSON.writeString(requestID, into: &bytes)
        bytes.append(contentsOf: #","model":"#.utf8)
        JSON.writeString(model, into: &bytes)
        bytes.append(contentsOf: #","version":"#.utf8)
        if let version { JSON.writeString(version, into: &bytes) } else { bytes.append(contentsOf: "null".utf8) }
        bytes.append(contentsOf: #","commit":"#.utf8)
        if let commit { JSON.writeString(commit, into: &bytes) } else { bytes.append(contentsOf: "null".utf8) }
        bytes.append(contentsOf: #","route":""#.utf8)
        bytes.append(contentsOf: route.rawValue.utf8)
        bytes.append(contentsOf: #"","variables":"#.utf8)
        Self.appendOneLine(variables, to: &bytes)
        if let error {
            bytes.append(contentsOf: #","error":"#.utf8)
            Self.appendOneLine(error, to: &bytes)
        } else {
            bytes.append(contentsOf: #","output":"#.utf8)
            Self.appendOneLine(output, to: &bytes)
        }
        bytes.append(contentsOf: #","status":"#.utf8)
        bytes.append(contentsOf: String(status).utf8)
        bytes.append(contentsOf: #","latency_ms":"#.utf8)
        let microseconds = Int((latency.seconds * 1_000_000).rounded())
        bytes.append(contentsOf: String(microseconds / 1000).utf8)
        let fraction = microseconds % 1000
        bytes.append(contentsOf: [
            UInt8(ascii: "."), UInt8(ascii: "0") + UInt8(fraction / 100), UInt8(ascii: "0") + UInt8(fraction / 10 % 10),
            UInt8(ascii: "0") + UInt8(fraction % 10),
        ])
        bytes.append(contentsOf: "}\n".utf8)
    }

    static func appendOneLine(_ json: [UInt8]?, to bytes: inout [UInt8]) {
        guard let json else {
            bytes.append(contentsOf: "null".utf8)
            return
        }
        if !json.contains(where: { $0 == 0x0A || $0 == 0x0D }) {
            bytes.append(contentsOf: json)
            return
        }
        for byte in json where byte != 0x0A && byte != 0x0D { bytes.append(byte) }
    }

    /// RFC 3339 in UTC with milliseconds: `2026-11-29T22:41:07.123Z`; digits written by hand (`String(format:)`
    /// costs more than the rest of the line).
    static func timestamp(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let second = milliseconds / 1000
        let fraction = Int(milliseconds % 1000)
        let millis = [UInt8(ascii: "0") + UInt8(fraction / 100), UInt8(ascii: "0") + UInt8(fraction / 10 % 10), UInt8(ascii: "0") + UInt8(fraction % 10)]
        // Lines come in bursts within the same second: its date and time are formatted once.
        if let cached = lastSecond.withLock({ $0.second == second ? $0.prefix : nil }) {
            return cached + String(decoding: millis, as: UTF8.self) + "Z"
        }
        let prefix = secondPrefix(second)
        lastSecond.withLock { $0 = (second, prefix) }
        return prefix + String(decoding: millis, as: UTF8.self) + "Z"
    }

    /// The last second formatted, and its `2026-11-29T22:41:07.` prefix.
    private static let lastSecond = Mutex<(second: Int64, prefix: String)>((-1, ""))

    static func secondPrefix(_ second: Int64) -> String {
        var seconds = time_t(second)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        func digits(_ value: Int, _ count: Int) {
            var divisor = 1
            for _ in 1..<count { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(Int(parts.tm_year) + 1900, 4)
        bytes.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, 2)
        bytes.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), 2)
        bytes.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), 2)
        bytes.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), 2)
        bytes.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), 2)
        bytes.append(UInt8(ascii: "."))
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A file open for appending failed to open or to be written.
public struct InferenceLogError: Error, CustomStringConvertible {
    public var description: String
}

/// Appends one JSON line per scored row to `INFERENCE_LOG`, off the request path.
///
/// A request only appends its record to a bounded queue (under a lock held for an array append); a thread of the
/// log's own takes the queue in batches and writes each batch in one `write(2)`. When the writer falls behind (a
/// slow or full disk, a pipe nobody reads), the queue fills and new rows are dropped and counted
/// (`autoserve_inference_log_dropped_total`): the log never slows or fails a request. The file is rotated by size
/// between batches, so a line is never split and never written twice.
public final class InferenceLog: Sendable {
    public let settings: InferenceLogSettings
    let metrics: Metrics
    let logger: Logger
    let written: CoreMetrics.Counter
    let dropped: CoreMetrics.Counter

    struct State {
        var queue: [InferenceRecord] = []
        var queuedBytes = 0
        var closing = false
        var descriptor: Int32
        var size: Int
        /// Whether the writer failed since its last success (logged once per failure streak).
        var failing = false
    }
    private let state: Mutex<State>
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// Opens (or creates) the file for appending; throws with the path and the reason when it cannot.
    ///
    /// A file past the size limit of the process (`ulimit -f`) must fail a write, not end the server: SIGXFSZ is
    /// ignored from here on.
    public init(settings: InferenceLogSettings, metrics: Metrics, logger: Logger) throws(InferenceLogError) {
        signal(SIGXFSZ, SIG_IGN)
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        written = metrics.counter("autoserve_inference_log_lines_total")
        dropped = metrics.counter("autoserve_inference_log_dropped_total")
        let descriptor = try Self.open(settings.path)
        var status = stat()
        fstat(descriptor, &status)
        state = Mutex(State(descriptor: descriptor, size: Int(status.st_size)))
        let thread = Thread { [self] in writeLoop() }
        thread.name = "inference-log"
        thread.start()
    }

    static func open(_ path: String) throws(InferenceLogError) -> Int32 {
        let descriptor = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw InferenceLogError(
                description: "INFERENCE_LOG=\(path) cannot be opened for appending: \(String(cString: strerror(errno))); "
                    + "point it at a file in a folder this user can write, or unset it")
        }
        return descriptor
    }

    /// Whether to keep the next row (`INFERENCE_LOG_SAMPLE`).
    public func samples() -> Bool {
        settings.sample >= 1 || Double.random(in: 0..<1) < settings.sample
    }

    /// Queues records for the writer, or drops them when the queue is full or the log is closing.
    public func append(_ records: [InferenceRecord]) {
        let (accepted, queued) = state.withLock { state -> (Int, Int) in
            guard !state.closing else { return (0, 0) }
            var accepted = 0
            for record in records {
                let size = record.size
                guard state.queue.count < settings.queueLimit, state.queuedBytes + size <= settings.queueBytes else { break }
                state.queue.append(record)
                state.queuedBytes += size
                accepted += 1
            }
            return (accepted, state.queue.count)
        }
        if accepted < records.count { dropped.increment(by: Int64(records.count - accepted)) }
        // The writer wakes every 20 ms on its own; it is woken early only for a large batch, so that a request
        // does not pay for a wake-up (a system call, and a thread switch on a small machine).
        if queued == Self.earlyWake { wake.signal() }
    }

    /// The queue length at which the writer is woken before its 20 ms are up.
    static let earlyWake = 2048

    public func append(_ record: InferenceRecord) {
        append([record])
    }

    /// Writes what is queued and closes the file; waits up to `timeout` for a writer held up by its file.
    public func close(timeout: Duration = .seconds(5)) {
        let first = state.withLock { state in
            defer { state.closing = true }
            return !state.closing
        }
        guard first else { return }
        wake.signal()
        if finished.wait(timeout: .now() + timeout.seconds) == .timedOut {
            let left = state.withLock { $0.queue.count }
            logger.error("the inference log's writer is held up by its file; rows still queued are lost", metadata: ["rows": "\(left)"])
        }
    }

    private func writeLoop() {
        // The writer yields to the event loops: at nice 19 its bursts of formatting and writing delay the requests
        // less on a machine with few cores (Linux applies a thread's nice value to that thread). SCHED_IDLE was
        // tried: it dropped rows under full load and did not lower p99 (BENCHMARKS.md).
        _ = autoserve_nice_this_thread(19)
        var bytes: [UInt8] = []
        while true {
            // A batch every 20 ms at most: rows that come together leave in one write.
            _ = wake.wait(timeout: .now() + 0.02)
            let (batch, closing) = state.withLock { state in
                defer {
                    state.queue.removeAll(keepingCapacity: true)
                    state.queuedBytes = 0
                }
                return (state.queue, state.closing)
            }
            if !batch.isEmpty {
                // A batch leaves in as few writes as the file size allows: the lines that would take the file past
                // `maxBytes` go in the next write, after the rotation, so that no file passes it.
                bytes.removeAll(keepingCapacity: true)
                var lines = 0
                var room = settings.maxBytes - state.withLock { $0.size }
                for record in batch {
                    let start = bytes.count
                    record.line(into: &bytes)
                    if bytes.count > room, start > 0 {
                        let line = Array(bytes[start...])
                        bytes.removeSubrange(start...)
                        write(bytes, lines: lines)
                        bytes = line
                        lines = 0
                        room = settings.maxBytes - state.withLock { $0.size }
                        if room < bytes.count { room = settings.maxBytes }
                    }
                    lines += 1
                }
                write(bytes, lines: lines)
            }
            if closing, state.withLock({ $0.queue.isEmpty }) {
                _ = state.withLock { Glibc.close($0.descriptor) }
                finished.signal()
                return
            }
        }
    }

    /// Writes one batch whole, rotating the file first when the batch would take it past `maxBytes`.
    private func write(_ bytes: [UInt8], lines: Int) {
        let (descriptor, start) = state.withLock { state -> (Int32, Int) in
            if state.size > 0, state.size + bytes.count > settings.maxBytes { rotate(&state) }
            return (state.descriptor, state.size)
        }
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                let reason = String(cString: strerror(errno))
                // The lines of the batch that were not written whole are dropped, and the part of a line already
                // written is cut off again, so that the file holds whole lines only.
                let whole = bytes[..<offset].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
                if whole < offset { _ = ftruncate(descriptor, off_t(start + whole)) }
                let complete = bytes[..<whole].filter { $0 == 0x0A }.count
                written.increment(by: Int64(complete))
                dropped.increment(by: Int64(lines - complete))
                let first = state.withLock { state in
                    defer { state.failing = true }
                    state.size = start + whole
                    return !state.failing
                }
                if first {
                    logger.error(
                        "cannot write the inference log; rows are dropped and counted until it can",
                        metadata: ["path": "\(settings.path)", "reason": "\(reason)"])
                }
                return
            }
            offset += count
        }
        written.increment(by: Int64(lines))
        state.withLock { state in
            state.size += bytes.count
            if state.failing { logger.info("the inference log is written again", metadata: ["path": "\(settings.path)"]) }
            state.failing = false
        }
    }

    /// `<path>` becomes `<path>.1`, `<path>.1` becomes `<path>.2` … up to `keep`; a new file takes its place.
    private func rotate(_ state: inout State) {
        let path = settings.path
        if settings.keep > 0 {
            unlink("\(path).\(settings.keep)")
            for index in stride(from: settings.keep - 1, through: 1, by: -1) { rename("\(path).\(index)", "\(path).\(index + 1)") }
            rename(path, "\(path).1")
        } else {
            unlink(path)
        }
        guard let descriptor = try? Self.open(path) else {
            logger.error("cannot open a new inference log after rotating it; writing on to the rotated file", metadata: ["path": "\(path)"])
            return
        }
        Glibc.close(state.descriptor)
        state.descriptor = descriptor
        state.size = 0
    }
}
