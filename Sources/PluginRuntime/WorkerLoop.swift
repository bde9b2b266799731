import CSystemShims

#if canImport(Glibc)
    import Glibc
#endif

/// How a worker answers frames: on the thread that read them, unless a call is slow.
///
/// Handing every frame to another thread costs a wake-up per request, as much as a fast model's work. So the
/// reading thread runs each call itself, under a one-shot timer (a system call, no wake-up, re-armed only
/// when the last arming is `rearmAfter` old, so a busy worker arms it a few thousand times a second rather
/// than once per row). When the timer fires, its thread looks at the call the reader is in: one that has run
/// `handOver` passes the reading to a parked thread (or a new one, up to `maximumThreads`), so a slow or hung call
/// never holds up the frames behind it (the slow thread parks once its call is done); one that began since the
/// timer was armed is given the rest of its `handOver` (the timer is armed again for it). `transform_predict` is
/// therefore called from several threads when calls are slow.
///
/// A call that outlasts `handOver` is announced to the server (`WorkerFrame.running`), whether or not a thread can
/// take the reading over: the server counts the row's timeout from then, not from when it sent the row, so rows
/// that wait here behind slow calls never make the model look hung.
///
/// Answers to frames that arrived together leave together: the reading thread queues its answers and writes
/// them in one go when no whole frame is left in its buffer, before it reads again. A server with many rows
/// in flight thus wakes once per batch, not once per row.
///
/// `@unchecked Sendable`: its threads share it; each mutable field says which lock guards it, or that only the
/// thread holding the reading touches it.
final class WorkerLoop: @unchecked Sendable {
    static let handOver: Int64 = 1_000_000  // 1 ms, in nanoseconds
    static let rearmAfter: Int64 = 250_000
    static let maximumThreads = 64

    let instance: PluginInstance
    /// Read only by the thread that holds the reading; handed over under `lock`.
    private var reader = FrameReader(descriptor: WorkerMain.requestDescriptor)
    private let writing = Condition()
    /// Answers not yet written, under `writing`.
    private var answers: [UInt8] = []
    private let timer = autoserve_timer_create()
    /// When the timer was last armed (monotonic nanoseconds); used by the thread that holds the reading.
    private var armedAt = Int64.min / 2

    private let lock = Condition()
    /// Bumped at every hand-over: a thread whose generation is stale no longer reads.
    private var generation: UInt64 = 0
    /// Whether the reading thread is inside a call (the only time it may be relieved), the frame of that call and when
    /// it began (monotonic nanoseconds).
    private var readerInCall = false
    private var readerCall: UInt64 = 0
    private var readerCallStart: Int64 = 0
    private var callsInFlight = 0
    private var parked = 0
    private var threads = 1
    private var offered = false

    init(instance: PluginInstance) {
        self.instance = instance
    }

    func run() -> Never {
        if timer >= 0 { startThread { self.relieveSlowCalls() } }
        read(from: 0)
    }

    /// The reading thread's loop; a thread relieved of the reading parks until it is offered it again.
    private func read(from start: UInt64) -> Never {
        var mine = start
        while true {
            if !reader.hasFrame, !flush() { exit(0) }
            guard let frame = reader.next() else { finish() }
            guard frame.code == WorkerFrame.predict || frame.code == WorkerFrame.explain else { continue }
            let now = timer >= 0 ? Self.monotonicNanoseconds() : 0
            lock.withLock {
                readerInCall = true
                readerCall = frame.id
                readerCallStart = now
                callsInFlight += 1
            }
            if timer >= 0, now - armedAt >= Self.rearmAfter {
                _ = autoserve_timer_arm(timer, Self.handOver)
                armedAt = now
            }
            var (status, bytes) = instance.call(variables: frame.payload, explain: frame.code == WorkerFrame.explain)
            if bytes.count > WorkerFrame.maximumPayload {
                // A frame past the limit would read as a corrupt stream on the server's side.
                (status, bytes) = (
                    PluginStatus.modelError.rawValue,
                    Array(
                        "transform_predict returned \(bytes.count) bytes, more than the \(WorkerFrame.maximumPayload) a worker can send back; return a smaller output"
                            .utf8)
                )
            }
            let answer = WorkerFrame(id: frame.id, code: UInt8(truncatingIfNeeded: status), payload: bytes)
            writing.withLock { answer.append(to: &answers) }
            lock.lock()
            if generation == mine {
                // Still the reading thread: its answers go out before it reads again. The timer stays armed:
                // a later call re-arms it, and an expiry between calls finds no call.
                readerInCall = false
                callsInFlight -= 1
                lock.unlock()
                continue
            }
            // Relieved of the reading during the call: answer at once, then park.
            lock.unlock()
            if !flush() { exit(0) }
            lock.lock()
            callsInFlight -= 1
            lock.broadcast()  // a finishing worker may be waiting for the last call
            parked += 1
            while !offered { lock.wait() }
            offered = false
            parked -= 1
            mine = generation
            lock.unlock()
        }
    }

    static func monotonicNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    /// Writes every answer not yet written; `false` when the server is gone.
    private func flush() -> Bool {
        writing.withLock {
            guard !answers.isEmpty else { return true }
            defer { answers.removeAll(keepingCapacity: true) }
            return WorkerFrame.write(answers, to: WorkerMain.responseDescriptor)
        }
    }

    /// The timer's thread: a call passed `handOver`, so another thread takes the reading.
    private func relieveSlowCalls() {
        var expirations: UInt64 = 0
        while true {
            guard Glibc.read(timer, &expirations, 8) == 8 else {
                if errno == EINTR { continue }
                return
            }
            lock.lock()
            guard readerInCall else {
                lock.unlock()
                continue
            }
            // A call that began after the arming is not slow yet: the timer is armed again for the rest of its time.
            let age = Self.monotonicNanoseconds() - readerCallStart
            guard age >= Self.handOver else {
                lock.unlock()
                _ = autoserve_timer_arm(timer, max(Self.handOver - age, 1_000))
                continue
            }
            let running = readerCall
            if parked > 0 || threads < Self.maximumThreads {
                generation += 1
                readerInCall = false
                let next = generation
                if parked > 0 {
                    offered = true
                    lock.broadcast()  // parked threads and a finishing one share the condition
                } else {
                    threads += 1
                    startThread { self.read(from: next) }
                }
            }
            lock.unlock()
            // The call is slow: its timeout counts from now on the server's side.
            writing.withLock { WorkerFrame(id: running, code: WorkerFrame.running, payload: []).append(to: &answers) }
            if !flush() { exit(0) }
        }
    }

    /// End of the request stream: answers still being computed are sent, then the worker exits.
    private func finish() -> Never {
        lock.lock()
        while callsInFlight > 0 { lock.wait() }
        exit(0)
    }
}
