import Crypto
import Foundation
import Testing

@testable import PluginBuilder

#if canImport(Glibc)
    import Glibc
#endif

/// The build cache's rules without a compiler: an entry is trusted only when it matches its seal, and the build lock
/// is held by one process at a time and never outlives the process that took it.
@Suite struct BuildCacheTests {
    static func folder() throws -> String {
        let path = "\(NSTemporaryDirectory())autoserve-cache-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func anEntryIsTrustedOnlyWhenItMatchesItsSeal() throws {
        let cache = try Self.folder()
        let entry = "\(cache)/AS_Model.so"
        let key = CacheKey(secret: "the fleet's cache key", origin: "CACHE_KEY")
        #expect(BuildCache.check(entry, identity: "id-1", key: key) == .missing)

        let temporary = BuildCache.temporaryName(for: entry)
        #expect(URL(fileURLWithPath: temporary).lastPathComponent.hasPrefix("."), "a file being written is never a reader's name")
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: temporary))
        try BuildCache.publish(temporary, as: entry, identity: "id-1", key: key)
        #expect(!FileManager.default.fileExists(atPath: temporary))
        #expect(BuildCache.check(entry, identity: "id-1", key: key) == .sound)
        #expect(BuildCache.check(entry, identity: "id-1", key: CacheKey(secret: "the fleet's cache key", origin: "a file")) == .sound)

        // Built for another toolchain or SDK.
        guard case .damaged(let other) = BuildCache.check(entry, identity: "id-2", key: key) else {
            Issue.record("another identity was trusted")
            return
        }
        #expect(other.contains("id-1") && other.contains("id-2"), "\(other)")

        // Sealed with another key: a replica given another CACHE_KEY, or one that generated its own.
        guard case .damaged(let foreign) = BuildCache.check(entry, identity: "id-1", key: CacheKey(secret: "another key", origin: "CACHE_KEY")) else {
            Issue.record("an entry sealed with another key was trusted")
            return
        }
        #expect(foreign.contains("CACHE_KEY"), "\(foreign)")

        // Truncated.
        let handle = try #require(FileHandle(forWritingAtPath: entry))
        try handle.truncate(atOffset: 1000)
        try handle.close()
        guard case .damaged(let truncated) = BuildCache.check(entry, identity: "id-1", key: key) else {
            Issue.record("a truncated entry was trusted")
            return
        }
        #expect(truncated.contains("1000 bytes"), "\(truncated)")

        // Same size, other bytes.
        try Data(repeating: 8, count: 4096).write(to: URL(fileURLWithPath: entry))
        #expect(
            BuildCache.check(entry, identity: "id-1", key: key)
                == .damaged("its seal was not made with this server's CACHE_KEY, or the file changed after it was sealed"))

        // A planted library with a seal recomputed as the seals were before keys: size and plain SHA-256.
        let planted = Data(repeating: 9, count: 4096)
        try planted.write(to: URL(fileURLWithPath: entry))
        let digest = SHA256.hash(data: planted).map { String(format: "%02x", $0) }.joined()
        try "size 4096\nsha256 \(digest)\nidentity id-1\n".write(toFile: "\(entry).sum", atomically: true, encoding: .utf8)
        guard case .damaged(let recomputed) = BuildCache.check(entry, identity: "id-1", key: key) else {
            Issue.record("a plugin with a recomputed plain SHA-256 seal was trusted")
            return
        }
        #expect(recomputed.contains("no HMAC"), "\(recomputed)")

        // No seal at all (an entry from before seals, or copied in by hand).
        try FileManager.default.removeItem(atPath: "\(entry).sum")
        guard case .damaged(let unsealed) = BuildCache.check(entry, identity: "id-1", key: key) else {
            Issue.record("an unsealed entry was trusted")
            return
        }
        #expect(unsealed.contains("no seal"), "\(unsealed)")
    }

    /// Without CACHE_KEY, the key is made once in STATE_DIR, readable by its owner alone, and the same on every start.
    @Test func theGeneratedKeyIsMadeOnceWithMode0600() throws {
        let state = try Self.folder() + "/state"
        let first = try CacheKey.generated(in: state)
        var status = stat()
        #expect(stat("\(state)/cache.key", &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600)
        #expect(status.st_size == 64)
        let again = try CacheKey.generated(in: state)
        #expect(first.origin == "\(state)/cache.key")
        #expect(first.code(of: Data([1, 2, 3]), identity: "id") == again.code(of: Data([1, 2, 3]), identity: "id"))
        #expect(first.code(of: Data([1, 2, 3]), identity: "id") != (try CacheKey.generated(in: try Self.folder())).code(of: Data([1, 2, 3]), identity: "id"))
        #expect(first.code(of: Data([1, 2, 3]), identity: "id") != first.code(of: Data([1, 2, 3]), identity: "id2"))
        // A replica given the file (CACHE_KEY_FILE) or its text (CACHE_KEY) holds the same key.
        let text = try String(contentsOfFile: "\(state)/cache.key", encoding: .utf8)
        #expect(CacheKey(secret: text, origin: "CACHE_KEY").code(of: Data([1, 2, 3]), identity: "id") == first.code(of: Data([1, 2, 3]), identity: "id"))
    }

    @Test func whatKilledBuildsLeftIsSweptOnceOld() throws {
        let cache = try Self.folder()
        let manager = FileManager.default
        let old = BuildCache.temporaryName(for: "\(cache)/AS_Old.so")
        let young = BuildCache.temporaryName(for: "\(cache)/AS_Young.so")
        for path in [old, young, "\(cache)/AS_Kept.so"] { try Data([1]).write(to: URL(fileURLWithPath: path)) }
        try manager.setAttributes([.modificationDate: Date().addingTimeInterval(-2 * 24 * 3600)], ofItemAtPath: old)
        try manager.setAttributes([.modificationDate: Date().addingTimeInterval(-2 * 24 * 3600)], ofItemAtPath: "\(cache)/AS_Kept.so")
        BuildCache.sweep(cache, olderThan: .seconds(24 * 3600))
        #expect(!manager.fileExists(atPath: old))
        #expect(manager.fileExists(atPath: young), "a young temporary file may be another replica's build in progress")
        #expect(manager.fileExists(atPath: "\(cache)/AS_Kept.so"), "entries are never swept")
    }

    /// Another process holds the lock (Python's `fcntl.flock`, the same system call): this one waits; once that
    /// process is killed with SIGKILL, the kernel drops its lock and this one takes it, long before its timeout.
    @Test func aLockHeldByAKilledProcessBlocksNoOne() async throws {
        let cache = try Self.folder()
        let lockPath = "\(cache)/AS_Model.lock"
        let marker = "\(cache)/holding"
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = [
            "python3", "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); open(sys.argv[2], 'w').close(); time.sleep(600)",
            lockPath, marker,
        ]
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) } }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while !FileManager.default.fileExists(atPath: marker) {
            #expect(clock.now < deadline, "flock did not take the lock")
            if clock.now >= deadline { return }
            try await Task.sleep(for: .milliseconds(20))
        }

        guard case .timedOut = await FileLock.acquire(lockPath, timeout: .milliseconds(300)) else {
            Issue.record("the lock was taken while another process held it")
            return
        }
        async let taken = FileLock.acquire(lockPath, timeout: .seconds(300), poll: .milliseconds(20))
        kill(holder.processIdentifier, SIGKILL)
        guard case .acquired(let lock, let waited) = await taken else {
            Issue.record("the lock of a killed process was never released")
            return
        }
        #expect(waited < .seconds(300))
        // Held now by this process: a second taker waits.
        guard case .timedOut = await FileLock.acquire(lockPath, timeout: .milliseconds(100)) else {
            Issue.record("two holders at once")
            return
        }
        lock.release()
        guard case .acquired(let again, _) = await FileLock.acquire(lockPath, timeout: .milliseconds(100)) else {
            Issue.record("a released lock could not be taken")
            return
        }
        again.release()
    }

    @Test func aLockFileThatCannotBeOpenedMeansBuildingWithoutIt() async throws {
        guard case .unsupported(let reason) = await FileLock.acquire("/nonexistent-\(UUID().uuidString)/AS.lock", timeout: .seconds(1)) else {
            Issue.record("a lock in a missing folder was taken")
            return
        }
        #expect(reason.contains("cannot open"), "\(reason)")
    }
}
