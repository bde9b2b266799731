import AutoServeModel
import CSystemShims
import CoreMetrics
public import Foundation
public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How the inference log is written (docs/operations.md, "The inference log").
public struct InferenceLogSettings: Sendable {
    public var path: String
    /// The fraction of rows kept, from 0 to 1.
    public var sample: Double = 1
    /// The size after which the file is rotated.
    public var maxBytes: Int = 100 << 20
    /// How many rotated files are kept (`<path>.1` is the newest).
    public var keep: Int = 5
    /// The most rows, and bytes of lines, waiting for the writer; more are dropped and counted.
    public var queueLimit: Int = 20_000
    public var queueBytes: Int = 16 << 20

    public init(path: String) {
        self.path = path
    }
}

/// One scored row as the inference log keeps it: captured on the request path as bytes the server already has,
/// and turned into a JSON line by the thread that scored it.
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
/// A request formats its row's line into a buffer of its thread's stripe (a lock held for the append of one line,
/// which other threads rarely share); a thread of the log's own takes the buffers every 20 ms and writes each in
/// one `write(2)`. The line is made where the row's bytes were made, so that they are freed by the thread that
/// allocated them: a writer that freed every request's bytes contended with the event loops for the allocator's
/// locks and showed in their p99. When the writer falls behind (a slow or full disk, a pipe nobody reads), the
/// buffers fill up to the bound and new rows are dropped and counted (`autoserve_inference_log_dropped_total`): the
/// log never slows or fails a request. The file is rotated by size between whole lines, so a line is never split
/// and never written twice.
public final class InferenceLog: Sendable {
    public let settings: InferenceLogSettings
    let metrics: Metrics
    let logger: Logger
    let written: CoreMetrics.Counter
    let dropped: CoreMetrics.Counter

    struct State {
        var descriptor: Int32
        var size: Int
        /// Whether the writer failed since its last success (logged once per failure streak).
        var failing = false
    }
    private let state: Mutex<State>

    /// Lines waiting for the writer, formatted by the threads that scored their rows.
    struct Pending {
        var bytes: [UInt8] = []
        /// Where each line ends in `bytes` (past its line feed): the writer cuts between lines without reading
        /// the bytes.
        var ends: [Int] = []
        /// Set by the writer's last pass at close: later rows are dropped.
        var closed = false
    }

    final class Stripe: Sendable {
        let pending = Mutex(Pending())
    }

    /// One stripe per thread, by a hash of the thread: the event loops rarely share one.
    private let stripes: [Stripe] = (0..<16).map { _ in Stripe() }
    /// Rows and bytes in all stripes, for the bound.
    private let queuedLines = Atomic<Int>(0)
    private let queuedBytes = Atomic<Int>(0)
    private let closing = Atomic<Bool>(false)
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

    /// The stripe of the calling thread.
    private var stripe: Stripe {
        let thread = UInt64(UInt(pthread_self()))
        return stripes[Int((thread &* 0x9E37_79B9_7F4A_7C15) >> 60) % stripes.count]
    }

    /// Formats the records' lines for the writer, or drops them when the bound is reached or the log is closing.
    public func append(_ records: [InferenceRecord]) {
        guard !closing.load(ordering: .relaxed) else {
            dropped.increment(by: Int64(records.count))
            return
        }
        let (accepted, bytes) = stripe.pending.withLock { pending -> (Int, Int) in
            guard !pending.closed else { return (0, 0) }
            let start = pending.bytes.count
            var accepted = 0
            for record in records {
                guard queuedLines.load(ordering: .relaxed) + accepted < settings.queueLimit,
                    queuedBytes.load(ordering: .relaxed) + (pending.bytes.count - start) < settings.queueBytes
                else { break }
                record.line(into: &pending.bytes)
                pending.ends.append(pending.bytes.count)
                accepted += 1
            }
            return (accepted, pending.bytes.count - start)
        }
        if accepted < records.count { dropped.increment(by: Int64(records.count - accepted)) }
        guard accepted > 0 else { return }
        queuedBytes.add(bytes, ordering: .relaxed)
        let queued = queuedLines.add(accepted, ordering: .relaxed).newValue
        // The writer wakes every 20 ms on its own; it is woken early only for a large batch, so that a request
        // does not pay for a wake-up (a system call, and a thread switch on a small machine).
        if queued >= Self.earlyWake, queued - accepted < Self.earlyWake { wake.signal() }
    }

    /// The number of rows waiting at which the writer is woken before its 20 ms are up.
    static let earlyWake = 2048

    public func append(_ record: InferenceRecord) {
        append([record])
    }

    /// Writes what is waiting and closes the file; waits up to `timeout` for a writer held up by its file.
    public func close(timeout: Duration = .seconds(5)) {
        guard !closing.exchange(true, ordering: .relaxed) else { return }
        wake.signal()
        if finished.wait(timeout: .now() + timeout.seconds) == .timedOut {
            logger.error(
                "the inference log's writer is held up by its file; rows still waiting are lost",
                metadata: ["rows": "\(queuedLines.load(ordering: .relaxed))"])
        }
    }

    private func writeLoop() {
        // The writer yields to the event loops: at nice 19 its writes delay the requests less on a machine with few
        // cores (Linux applies a thread's nice value to that thread). SCHED_IDLE was tried: it dropped rows under
        // full load and did not lower p99 (BENCHMARKS.md).
        _ = autoserve_nice_this_thread(19)
        // One spare buffer per stripe, swapped with the stripe's: the buffers keep their capacity, so that in a
        // steady state nothing is allocated or freed.
        var spares = [Pending](repeating: Pending(), count: stripes.count)
        while true {
            // A batch every 20 ms at most: rows that come together leave in one write.
            _ = wake.wait(timeout: .now() + 0.02)
            let last = closing.load(ordering: .relaxed)
            for (index, stripe) in stripes.enumerated() {
                var taken = spares[index]
                stripe.pending.withLock { pending in
                    swap(&pending.bytes, &taken.bytes)
                    swap(&pending.ends, &taken.ends)
                    if last { pending.closed = true }
                }
                if !taken.ends.isEmpty {
                    queuedLines.subtract(taken.ends.count, ordering: .relaxed)
                    queuedBytes.subtract(taken.bytes.count, ordering: .relaxed)
                    writeLines(taken.bytes, ends: taken.ends)
                }
                taken.bytes.removeAll(keepingCapacity: true)
                taken.ends.removeAll(keepingCapacity: true)
                spares[index] = taken
            }
            if last {
                _ = state.withLock { Glibc.close($0.descriptor) }
                finished.signal()
                return
            }
        }
    }

    /// Writes whole lines (`ends`: where each ends) in as few writes as the file size allows: the lines that would
    /// take the file past `maxBytes` go in the next write, after the rotation, so that no file passes it (a line
    /// longer than `maxBytes` has a file of its own).
    private func writeLines(_ bytes: [UInt8], ends: [Int]) {
        var first = 0  // the first line not written yet
        while first < ends.count {
            let start = first == 0 ? 0 : ends[first - 1]
            let room = settings.maxBytes - state.withLock { $0.size }
            // The most lines from `first` that fit in `limit` bytes (binary search over their ends).
            func fitting(_ limit: Int) -> Int {
                var low = first
                var high = ends.count
                while low < high {
                    let middle = (low + high) / 2
                    if ends[middle] - start <= limit { low = middle + 1 } else { high = middle }
                }
                return low
            }
            var next = fitting(room)
            if next == first { next = max(fitting(settings.maxBytes), first + 1) }
            write(bytes[start..<ends[next - 1]], lines: next - first)
            first = next
        }
    }

    /// Writes one piece of whole lines, rotating the file first when the piece would take it past `maxBytes`.
    private func write(_ piece: ArraySlice<UInt8>, lines: Int) {
        let (descriptor, start) = state.withLock { state -> (Int32, Int) in
            if state.size > 0, state.size + piece.count > settings.maxBytes { rotate(&state) }
            return (state.descriptor, state.size)
        }
        piece.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let count = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if count < 0, errno == EINTR { continue }
                guard count > 0 else {
                    let reason = String(cString: strerror(errno))
                    // The lines of the piece that were not written whole are dropped, and the part of a line
                    // already written is cut off again, so that the file holds whole lines only.
                    let whole = bytes[..<offset].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
                    if whole < offset { _ = ftruncate(descriptor, off_t(start + whole)) }
                    let complete = bytes[..<whole].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
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
