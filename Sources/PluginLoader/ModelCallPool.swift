#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The threads that run in-process models' calls (one per core), so that the event loops never run a model:
/// a slow model holds up only the rows queued behind it on these threads, never the connections of a loop
/// (health checks, other models), and a loop busy with HTTP is not also busy with models. A thread takes the
/// next call without sleeping while calls are queued.
final class ModelCallPool: @unchecked Sendable {
    static let shared = ModelCallPool(threads: max(1, ProcessInfo.processInfo.activeProcessorCount))

    private let condition = NSCondition()
    private var queue: [() -> Void] = []
    private var head = 0

    init(threads: Int) {
        for index in 0..<threads {
            Thread.detachNewThread { [self] in
                // What `top -H` shows (Linux keeps 15 bytes of a thread's name and refuses a longer one).
                Thread.current.name = "model-call-\(index)"
                work()
            }
        }
    }

    func run(_ call: @escaping @Sendable () -> Void) {
        condition.lock()
        queue.append(call)
        condition.signal()
        condition.unlock()
    }

    private func work() -> Never {
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
            call()
        }
    }
}
