import NIOCore
import NIOPosix
import Synchronization

/// Something with requests that have deadlines: a worker connection, an in-process model.
protocol DeadlineWatched: AnyObject, Sendable {
    /// Answers the requests whose deadline is past `now` (504).
    func expireOverdue(at now: ContinuousClock.Instant)
}

/// One clock for every request deadline, worker and in-process alike: a task repeated every 10 ms on one event
/// loop, so a request costs no timer (a timer per request cost a wake-up of another thread to set and to cancel).
final class DeadlineWatchdog: Sendable {
    static let shared = DeadlineWatchdog()
    static let interval = TimeAmount.milliseconds(10)

    /// Held weakly: an in-process model leaves when its last request and its version are gone.
    private struct Entry {
        weak var watched: (any DeadlineWatched)?
    }

    private let watched = Mutex<[ObjectIdentifier: Entry]>([:])

    private init() {
        MultiThreadedEventLoopGroup.singleton.next().scheduleRepeatedTask(initialDelay: Self.interval, delay: Self.interval) { [self] _ in
            let now = ContinuousClock.now
            for entry in watched.withLock({ Array($0.values) }) { entry.watched?.expireOverdue(at: now) }
        }
    }

    func watch(_ object: any DeadlineWatched) {
        watched.withLock { $0[ObjectIdentifier(object)] = Entry(watched: object) }
    }

    /// Called when nothing of `object` can be waiting any more.
    func forget(_ object: any DeadlineWatched) {
        _ = watched.withLock { $0.removeValue(forKey: ObjectIdentifier(object)) }
    }
}
