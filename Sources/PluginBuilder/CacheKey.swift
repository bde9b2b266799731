import Crypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The key that seals the build cache's entries (`CACHE_KEY`; docs/operations.md, "The sandbox"): a cached plugin
/// or SDK whose seal this key did not make is rebuilt, never loaded. No model can read it: a confined worker reads
/// only its own files, and the key lives in the server's environment or in `STATE_DIR`.
public struct CacheKey: Sendable {
    /// The key's bytes (a `SymmetricKey` is not `Sendable`; one is made per seal).
    let bytes: [UInt8]
    /// Where the key came from, for the log: `CACHE_KEY`, a file's path.
    public let origin: String

    /// The key derived from a secret (`CACHE_KEY`): replicas given the same secret trust each other's entries.
    public init(secret: String, origin: String) {
        bytes = Array(SHA256.hash(data: Data(secret.utf8)))
        self.origin = origin
    }

    /// The key in `STATE_DIR/cache.key`, made (64 random hex digits, mode 0600) when missing: the entries it seals are
    /// trusted by this server, and by replicas given the same file as `CACHE_KEY_FILE` (or its text as `CACHE_KEY`).
    public static func generated(in stateDirectory: String) throws(CacheKeyError) -> CacheKey {
        let path = (stateDirectory as NSString).appendingPathComponent("cache.key")
        try? FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        if let existing = read(path) { return existing }
        let text = SymmetricKey(size: .bits256).withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
        let temporary = "\(path).tmp-\(UUID().uuidString)"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CacheKeyError("cannot write \(path): \(String(cString: strerror(errno))); check STATE_DIR") }
        let written = text.utf8CString.withUnsafeBytes { write(descriptor, $0.baseAddress, text.utf8.count) }
        close(descriptor)
        // link(2) publishes the key only if no other process made one meanwhile; then that one is the key.
        let linked = written == text.utf8.count && link(temporary, path) == 0
        let failure = errno
        unlink(temporary)
        if let existing = read(path) { return existing }
        guard linked else { throw CacheKeyError("cannot write \(path): \(String(cString: strerror(failure))); check STATE_DIR") }
        return CacheKey(secret: text, origin: path)
    }

    /// The key of a `cache.key` file, unless it is missing or too short to be one.
    static func read(_ path: String) -> CacheKey? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.utf8.count >= 16 ? CacheKey(secret: text, origin: path) : nil
    }

    /// A random key of this process alone: what it seals, no later process trusts.
    public static func ephemeral() -> CacheKey {
        CacheKey(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }, origin: "memory")
    }

    init(bytes: Data, origin: String) {
        self.bytes = Array(bytes)
        self.origin = origin
    }

    /// The seal's code of a file's bytes for a build identity.
    func code(of data: Data, identity: String) -> String {
        var hmac = HMAC<SHA256>(key: SymmetricKey(data: bytes))
        hmac.update(data: Data(identity.utf8))
        hmac.update(data: Data([0x0A]))
        hmac.update(data: data)
        return Data(hmac.finalize()).map { String(format: "%02x", $0) }.joined()
    }
}

/// The cache key could not be read or made.
public struct CacheKeyError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
