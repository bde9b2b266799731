public import CSystemShims
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a command to completion off the caller's thread, with its output captured and a time limit.
///
/// Spawned with `posix_spawn` and waited for with `waitpid` on a thread of its own, not with `Foundation.Process`:
/// on Linux that detects an exit through a socket it lets the child inherit, and a process spawned meanwhile by
/// another thread (a concurrent build, a helper) inherited it too, so an exited compiler stayed a zombie and its
/// wait spun for ever (swift-corelibs-foundation#4795). Every descriptor made here closes on exec.
public enum ProcessRunner {
    public struct Outcome: Sendable {
        public var exitCode: Int32
        public var output: String
        public var timedOut: Bool
        /// True when a signal ended the process (a kill, the out-of-memory killer, a crash), not its own exit.
        public var signalled = false

        public var succeeded: Bool { exitCode == 0 && !timedOut && !signalled }
    }

    /// A command that could not be started.
    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Where `nice` is: builds run under it, so that a compile never takes the cores from the requests.
    static let nice = ["/usr/bin/nice", "/bin/nice"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Runs `executable` with `arguments` in `directory` (default: this process's); stdout and stderr are merged, as a
    /// developer would read them.
    /// `background` lowers its CPU priority (`nice -n 10`; the compiler's own subprocesses inherit it). The command
    /// runs in a process group of its own, which a timeout kills whole (a compiler's frontend and linker too).
    /// `environment` replaces this process's when given.
    public static func run(
        _ executable: String,
        _ arguments: [String],
        directory: String? = nil,
        timeout: Duration = .seconds(600),
        background: Bool = false,
        environment: [String: String]? = nil
    ) async throws -> Outcome {
        if background, let nice {
            return try await run(nice, ["-n", "10", executable] + arguments, directory: directory, timeout: timeout, environment: environment)
        }
        let logPath = NSTemporaryDirectory() + "autoserve-\(UUID().uuidString).log"
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard log >= 0 else { throw SpawnError(description: "cannot create \(logPath): \(String(cString: strerror(errno)))") }
        defer {
            Glibc.close(log)
            unlink(logPath)
        }
        let pid = try spawn([executable] + arguments, output: log, directory: directory, environment: environment)
        // A cancelled caller (the server stopping) kills the command: nothing would read what it makes.
        let (status, timedOut) = await withTaskCancellationHandler {
            await wait(for: pid, timeout: timeout)
        } onCancel: {
            _ = kill(-pid, SIGKILL)
        }
        let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        let signalled = status & 0x7f != 0
        return Outcome(
            exitCode: signalled ? status & 0x7f : (status >> 8) & 0xff, output: output, timedOut: timedOut, signalled: signalled)
    }

    /// `pid`'s wait status once it ends, and whether `timeout` passed first: the first to end of the wait and the
    /// timer, and a timer that fires kills the group, so the wait then ends too.
    static func wait(for pid: pid_t, timeout: Duration) async -> (status: Int32, timedOut: Bool) {
        enum Event: Sendable {
            case exited(Int32)
            case timedOut
        }
        return await withTaskGroup(of: Event?.self) { group in
            group.addTask { .exited(await reap(pid)) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                guard !Task.isCancelled else { return nil }
                // The whole group: a child inherits a signal mask that blocks SIGTERM from the thread that spawned it.
                _ = kill(-pid, SIGKILL)
                return .timedOut
            }
            var status: Int32 = 0
            var timedOut = false
            for await event in group {
                switch event {
                case .exited(let code)?:
                    status = code
                    group.cancelAll()
                case .timedOut?: timedOut = true
                case nil: break
                }
            }
            return (status, timedOut)
        }
    }

    /// posix_spawn in a new process group, with a clean signal mask and dispositions (the calling thread may block
    /// most signals, and a child inherits that), standard input from /dev/null and both outputs to `output`.
    static func spawn(_ arguments: [String], output: Int32, directory: String?, environment: [String: String]?) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, output, 2)
        if let directory { _ = autoserve_spawn_chdir(&actions, directory) }
        // NIO opens its sockets without close-on-exec: a compiler must not hold the server's listening socket or a
        // client's connection (a server killed mid-build could not bind its port again until the compile ended).
        let closing = autoserve_spawn_closefrom(&actions, 3)
        guard closing == 0 else { throw SpawnError(description: "cannot run \(arguments[0]): \(String(cString: strerror(closing)))") }
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let result = withCleanSignals(newProcessGroup: true) { attributes in posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp) }
        guard result == 0 else { throw SpawnError(description: "cannot run \(arguments[0]): \(String(cString: strerror(result)))") }
        return pid
    }

    /// posix_spawn attributes that empty the child's signal mask and reset every signal to its default (the spawning
    /// thread may block most signals, and a child inherits both), and start it in a process group of its own when
    /// asked.
    public static func withCleanSignals<T>(newProcessGroup: Bool, _ body: (inout posix_spawnattr_t) -> T) -> T {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var everySignal = sigset_t()
        sigfillset(&everySignal)
        posix_spawnattr_setsigdefault(&attributes, &everySignal)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        return body(&attributes)
    }

    /// Waits for `pid` to end on a thread of its own (a blocking `waitpid` of that one child), and returns its status.
    static func reap(_ pid: pid_t) async -> Int32 {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0, errno == EINTR {}
                continuation.resume(returning: status)
            }
        }
    }
}
