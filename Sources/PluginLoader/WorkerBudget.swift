import Foundation
import PluginRuntime
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The worker processes of every model together, bounded by `MAX_WORKERS` (docs/architecture.md, "Worker processes"): a version
/// whose workers would pass the bound fails to load, naming it, instead of starting them (a folder with `workers: 64`
/// once started 64 processes, 1.1 GB, whatever else ran).
///
/// A version holds its share from before its first worker starts until it is released; during a swap the old and
/// the new version both hold theirs. A worker restarted in its slot keeps the share.
public final class WorkerBudget: Sendable {
    public let limit: Int
    private let used = Mutex(0)

    public init(limit: Int) {
        self.limit = limit
    }

    /// Takes `count` workers for `model`, or says why not.
    func reserve(_ count: Int, model: String) throws(PluginLoadError) {
        let taken = used.withLock { used -> Int? in
            guard count <= limit - used else { return used }
            used += count
            return nil
        }
        if let taken {
            throw PluginLoadError(
                "starting its \(count) worker\(count == 1 ? "" : "s") would make \(taken + count) worker processes, over MAX_WORKERS (\(limit)); "
                    + "lower workers in \(model)'s model.yaml, or raise MAX_WORKERS")
        }
    }

    func release(_ count: Int) {
        used.withLock { $0 -= count }
    }

    /// The workers held now.
    public var inUse: Int { used.withLock { $0 } }

    /// `MAX_WORKERS` by default: a worker for every 64 MiB of the memory the server may use (its cgroup's limit in a
    /// container, else the machine's), and at most 128 per core; at least 8.
    public static func defaultLimit() -> Int {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        return max(8, min(memoryBytes() / (64 << 20), 128 * cores))
    }

    /// The memory this process may use: its cgroup's limit (v2, then v1) when there is one, else the machine's.
    static func memoryBytes() -> Int {
        let machine = Int(ProcessInfo.processInfo.physicalMemory)
        for file in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
                let limit = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0
            {
                return min(limit, machine)
            }
        }
        return machine
    }
}
