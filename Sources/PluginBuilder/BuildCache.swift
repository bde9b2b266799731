import Crypto
import Foundation
import ServingCore

#if canImport(Glibc)
    import Glibc
#endif

/// The rules of the build cache (`CACHE_DIR`), which several replicas may share (docs/deployment.md, "Running a fleet").
///
/// An entry (a plugin's `.so`, the SDK's library) is published whole: it is written under a temporary name, its seal
/// (size, the build identity and an HMAC-SHA256 of both with the `CacheKey`, in `<entry>.sum`) is written next, and
/// only then is it renamed into place. A reader trusts an entry only when it matches its seal, so a half-written file,
/// a truncated one, one built for another toolchain or SDK, or one planted by anyone without the key (a model, a
/// replica given another key) is rebuilt, never loaded (docs/operations.md, "The sandbox").
///
/// Builds of one entry are serialized across processes by an `flock(2)` on `<entry>.lock`: the first replica builds,
/// the others wait and then load what it published. The kernel drops the lock with the process that held it, so a
/// replica killed in the middle of a build blocks no one.
public enum BuildCache {
    /// What a look at an entry found.
    public enum Check: Equatable, Sendable {
        case missing
        case sound
        /// The entry exists but does not match its seal; the reason says how.
        case damaged(String)
    }

    /// Writes the seal of `file` (about to be renamed to `entry`): its size, `identity` and their HMAC with `key`.
    public static func seal(_ file: String, as entry: String, identity: String, key: CacheKey) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        let text = "size \(data.count)\nhmac-sha256 \(key.code(of: data, identity: identity))\nidentity \(identity)\n"
        try text.write(toFile: "\(entry).sum", atomically: true, encoding: .utf8)
    }

    /// Whether `entry` exists and matches its seal, made with `key`.
    public static func check(_ entry: String, identity: String, key: CacheKey) -> Check {
        guard let data = FileManager.default.contents(atPath: entry) else { return .missing }
        guard let seal = try? String(contentsOfFile: "\(entry).sum", encoding: .utf8) else { return .damaged("it has no seal (\(entry).sum)") }
        var fields: [String: String] = [:]
        for line in seal.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        if fields["identity"] != identity {
            return .damaged("it was built for \(fields["identity"] ?? "an unknown build"), not \(identity)")
        }
        if fields["size"] != String(data.count) { return .damaged("it has \(data.count) bytes where its seal says \(fields["size"] ?? "nothing")") }
        guard let code = fields["hmac-sha256"] else {
            return .damaged("its seal has no HMAC: it was not sealed by a server that holds this CACHE_KEY")
        }
        if code != key.code(of: data, identity: identity) {
            return .damaged("its seal was not made with this server's CACHE_KEY, or the file changed after it was sealed")
        }
        return .sound
    }

    /// Moves `file` to `entry` in one rename, after sealing it with `key`; `file` must be on the cache's file system.
    public static func publish(_ file: String, as entry: String, identity: String, key: CacheKey) throws {
        try seal(file, as: entry, identity: identity, key: key)
        guard rename(file, entry) == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: entry]) }
    }

    /// A name beside `entry` for a file being written, which no reader ever opens (it starts with a dot).
    public static func temporaryName(for entry: String) -> String {
        let url = URL(fileURLWithPath: entry)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(UUID().uuidString)").path
    }

    /// Removes what killed builds left in `directory` (temporary files and staging folders) once older than `age`:
    /// a younger one may be another replica's build in progress.
    public static func sweep(_ directory: String, olderThan age: Duration) {
        let manager = FileManager.default
        guard let names = try? manager.contentsOfDirectory(atPath: directory) else { return }
        let cutoff = Date().addingTimeInterval(-age.seconds)
        for name in names where name.contains(".tmp-") || name.contains(".staging-") || name.contains(".damaged-") {
            let path = (directory as NSString).appendingPathComponent(name)
            if let modified = (try? manager.attributesOfItem(atPath: path))?[.modificationDate] as? Date, modified < cutoff {
                try? manager.removeItem(atPath: path)
            }
        }
    }

}

/// An exclusive `flock(2)` on a lock file, held while this process builds the entry beside it.
///
/// The descriptor is close-on-exec: a compiler started while the lock is held must not keep it after this process
/// dies. Closing the descriptor (or the process's death) releases the lock.
public final class FileLock: Sendable {
    let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// How waiting for a lock ended.
    public enum Outcome: Sendable {
        /// This process holds the lock; `waited` is how long another one held it first.
        case acquired(FileLock, waited: Duration)
        /// Another process still held it after the timeout.
        case timedOut
        /// The file system cannot lock (or the lock file cannot be opened): each replica builds on its own.
        case unsupported(String)
    }

    /// One attempt, without waiting.
    enum Attempt {
        case acquired(FileLock)
        case busy
        case unsupported(String)
    }

    /// Takes the lock of `path`, waiting up to `timeout` for the process that holds it; `whenBusy` runs once, when
    /// the lock turns out to be held.
    public static func acquire(
        _ path: String, timeout: Duration, poll: Duration = .milliseconds(100), whenBusy: () -> Void = {}
    ) async -> Outcome {
        let clock = ContinuousClock()
        let start = clock.now
        var first = true
        while true {
            switch attempt(path) {
            case .acquired(let lock): return .acquired(lock, waited: clock.now - start)
            case .unsupported(let reason): return .unsupported(reason)
            case .busy:
                if first { whenBusy() }
                first = false
                // A cancelled wait (the server stopping) ends now, as a wait that timed out.
                if clock.now - start >= timeout || Task.isCancelled { return .timedOut }
                try? await Task.sleep(for: poll)
            }
        }
    }

    static func attempt(_ path: String) -> Attempt {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return .unsupported("cannot open \(path): \(String(cString: strerror(errno)))") }
        if flock(descriptor, LOCK_EX | LOCK_NB) == 0 { return .acquired(FileLock(descriptor: descriptor)) }
        let failure = errno
        close(descriptor)
        return failure == EWOULDBLOCK || failure == EINTR ? .busy : .unsupported("flock on \(path) failed: \(String(cString: strerror(failure)))")
    }

    /// Releases the lock.
    public func release() {
        close(descriptor)
    }
}
