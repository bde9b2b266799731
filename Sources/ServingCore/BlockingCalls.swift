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
    ///
    /// The call runs even when the calling task is cancelled (a stop during a sync): a blocking call cannot be
    /// interrupted, and `NIOThreadPool.runIfActive` would instead throw `CancellationError` before it started.
    public static func run<T: Sendable, Failure: Error>(_ work: @escaping @Sendable () throws(Failure) -> T) async throws(Failure) -> T {
        let result: Result<T, Failure> = await withCheckedContinuation { continuation in
            pool.submit { state in
                // The pool is started once and never shut down.
                precondition(state == .active, "the blocking-call pool is not running")
                continuation.resume(returning: Result { () throws(Failure) in try work() })
            }
        }
        return try result.get()
    }
}
