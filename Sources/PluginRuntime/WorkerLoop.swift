#if canImport(Glibc)
import Glibc
#endif
import CSystemShims

/// How a worker answers frames: on the thread that read them, unless a call is slow.
///
/// Handing every frame to another thread costs a wake-up per request, as much as a fast model's work. So the
/// reading thread runs each call itself, with a one-shot timer armed (one system call, no wake-up). When a
/// call outlasts `handOver`, the timer's thread passes the reading to a parked thread (or a new one, up to
/// `maximumThreads`), so a slow or hung call never holds up the frames behind it; the slow thread parks once
/// its call is done. `transform_predict` is therefore called from several threads when calls are slow.
final class WorkerLoop: @unchecked Sendable {
    static let handOver: Int64 = 1_000_000  // 1 ms, in nanoseconds
    static let maximumThreads = 64

    let instance: PluginInstance
    /// Read only by the thread that holds the reading; handed over under `lock`.
    private var reader = FrameReader(descriptor: WorkerMain.requestDescriptor)
    private let writing = Condition()
    private let timer = autoserve_timer_create()

    private let lock = Condition()
    /// Bumped at every hand-over: a thread whose generation is stale no longer reads.
    private var generation: UInt64 = 0
    /// Whether the reading thread is inside a call (the only time it may be relieved).
    private var readerInCall = false
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
            guard let frame = reader.next() else { finish() }
            guard frame.code == WorkerFrame.predict else { continue }
            lock.withLock {
                readerInCall = true
                callsInFlight += 1
            }
            if timer >= 0 { _ = autoserve_timer_arm(timer, Self.handOver) }
            let (status, bytes) = instance.call(variables: frame.payload)
            let sent = writing.withLock {
                WorkerFrame.write(WorkerFrame(id: frame.id, code: UInt8(truncatingIfNeeded: status), payload: bytes), to: WorkerMain.responseDescriptor)
            }
            if !sent { exit(0) }
            lock.lock()
            callsInFlight -= 1
            if generation == mine {
                // The timer stays armed: the next call re-arms it, and an expiry between calls finds no call.
                readerInCall = false
                lock.unlock()
                continue
            }
            lock.broadcast()  // a finishing worker may be waiting for the last call
            parked += 1
            while !offered { lock.wait() }
            offered = false
            parked -= 1
            mine = generation
            lock.unlock()
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
            guard readerInCall, parked > 0 || threads < Self.maximumThreads else {
                lock.unlock()
                continue
            }
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
            lock.unlock()
        }
    }

    /// End of the request stream: answers still being computed are sent, then the worker exits.
    private func finish() -> Never {
        lock.lock()
        while callsInFlight > 0 { lock.wait() }
        exit(0)
    }
}
