import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The threads that run in-process models' calls (one per core), so that the event loops never run a model:
/// a slow model holds up only the rows queued behind it on these threads, never the connections of a loop
/// (health checks, other models), and a loop busy with HTTP is not also busy with models. A thread takes the
/// next call without sleeping while calls are queued.
///
/// A call that hangs past its model's timeout cannot be stopped in-process; its thread is written off and
/// `replaceHungThread()` starts another, so the pool keeps its size for the calls behind it. A written-off
/// thread that ever comes back ends (its call returns `false`).
///
/// A thread of its own per call slot, not a pool of the concurrency runtime or NIO: a model call may block for
/// as long as the model likes, and a hung one is written off with its thread. `@unchecked Sendable`: `queue`,
/// `head` and `started` are only read and written under `condition`.
final class ModelCallPool: @unchecked Sendable {
    static let shared = ModelCallPool(threads: max(1, ProcessInfo.processInfo.activeProcessorCount))

    private let condition = NSCondition()
    private var queue: [@Sendable () -> Bool] = []
    private var head = 0
    /// Threads started so far, for their names.
    private var started = 0

    init(threads: Int) {
        for _ in 0..<threads { startThread() }
    }

    /// Queues a call; it returns whether its thread goes on taking calls (`false`: it was written off).
    func run(_ call: @escaping @Sendable () -> Bool) {
        condition.lock()
        queue.append(call)
        condition.signal()
        condition.unlock()
    }

    /// Starts a thread in place of one whose call hangs.
    func replaceHungThread() {
        startThread()
    }

    private func startThread() {
        condition.lock()
        let index = started
        started += 1
        condition.unlock()
        Thread.detachNewThread { [self] in
            // What `top -H` shows (Linux keeps 15 bytes of a thread's name and refuses a longer one).
            Thread.current.name = "model-call-\(index)"
            work()
        }
    }

    private func work() {
        while true {
            condition.lock()
            while head == queue.count { condition.wait() }
            let call = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            }
            condition.unlock()
            guard call() else { return }
        }
    }
}
