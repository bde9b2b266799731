import NIOPosix

/// Runs the calls that block for as long as they like (libgit2's fetches and exports, `dlopen` and a model's
/// `init(path:)`) on a NIO thread pool of their own, so that they never hold an event loop or a thread of the
/// concurrency pool, where the HTTP responder and health checks run.
///
/// Eight threads rather than NIO's shared pool (one per core): a model's `init(path:)` may load weights for
/// minutes, and a fetch, the other models' loads and the next sync should not queue behind it.
public enum BlockingCalls {
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 8)
        pool.start()
        return pool
    }()

    /// `work`'s result, computed on the pool.
    public static func run<T: Sendable, Failure: Error>(_ work: @escaping @Sendable () throws(Failure) -> T) async throws(Failure) -> T {
        let result: Result<T, Failure>
        do {
            result = try await pool.runIfActive { Result { () throws(Failure) in try work() } }
        } catch {
            // The pool is started once and never shut down.
            preconditionFailure("the blocking-call pool is not running: \(error)")
        }
        return try result.get()
    }
}
