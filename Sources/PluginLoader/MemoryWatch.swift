import Foundation
import Synchronization

/// Something whose worker processes have a memory limit (`memory_mb`).
protocol MemoryWatched: AnyObject, Sendable {
    /// Reads each worker's resident memory and kills the ones over the limit.
    func checkMemory()
}

/// One thread for every memory limit, checking each watched model every 100 ms: reading `/proc/<pid>/statm` is a
/// file read, kept off the event loops (docs/operations.md, "Reliability": no blocking call on an event loop).
final class MemoryWatch: Sendable {
    static let shared = MemoryWatch()
    static let interval: TimeInterval = 0.1

    private struct Entry {
        weak var watched: (any MemoryWatched)?
    }

    private let watched = Mutex<[ObjectIdentifier: Entry]>([:])

    private init() {
        let thread = Thread { [self] in
            while true {
                Thread.sleep(forTimeInterval: Self.interval)
                for entry in watched.withLock({ Array($0.values) }) { entry.watched?.checkMemory() }
            }
        }
        thread.name = "autoserve-memory"
        thread.start()
    }

    func watch(_ object: any MemoryWatched) {
        watched.withLock { $0[ObjectIdentifier(object)] = Entry(watched: object) }
    }

    func forget(_ object: any MemoryWatched) {
        _ = watched.withLock { $0.removeValue(forKey: ObjectIdentifier(object)) }
    }
}
