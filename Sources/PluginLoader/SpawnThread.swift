import Foundation

/// The one thread that starts worker processes; it never exits.
///
/// A worker asks the kernel to kill it when the server dies (`PR_SET_PDEATHSIG`), so that no worker outlives
/// it; but Linux sends that signal when the *thread* that spawned the worker exits, not when its process does.
/// The threads that run Swift tasks come and go with the load, so a worker spawned from one of them was killed
/// (signal 9, reported as a crash, its rows failed with 503) whenever that thread ended. Spawned from this
/// thread, a worker lives as long as the server.
///
/// `@unchecked Sendable`: `jobs` is only read and written under `condition`.
final class SpawnThread: @unchecked Sendable {
    static let shared = SpawnThread()

    private let condition = NSCondition()
    private var jobs: [() -> Void] = []

    private init() {
        Thread.detachNewThread { [self] in
            Thread.current.name = "worker-spawner"
            while true {
                condition.lock()
                while jobs.isEmpty { condition.wait() }
                let job = jobs.removeFirst()
                condition.unlock()
                job()
            }
        }
    }

    /// Runs `body` on the spawning thread and waits for its result (a `posix_spawn`: a moment).
    func run<Value>(_ body: @escaping () -> Value) -> Value {
        let outcome = Outcome<Value>()
        condition.lock()
        jobs.append {
            outcome.value = body()
            outcome.done.signal()
        }
        condition.signal()
        condition.unlock()
        outcome.done.wait()
        return outcome.value!
    }
}

/// A job's result, handed from the spawning thread to the waiting one. `@unchecked Sendable`: `value` is written
/// before the semaphore's signal and read after its wait, which orders the two.
private final class Outcome<Value>: @unchecked Sendable {
    var value: Value?
    let done = DispatchSemaphore(value: 0)
}
