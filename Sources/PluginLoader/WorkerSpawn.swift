import CSystemShims
import PluginBuilder
import PluginRuntime

#if canImport(Glibc)
    import Glibc
#endif

extension WorkerConnection {
    /// Starts a worker from the `SpawnThread`, so that its parent-death signal waits for the server's end: its
    /// pid, the server's end of its socket, and the read ends of its standard output and error.
    static func spawn(_ arguments: [String], environment: [String: String]) throws(PluginLoadError) -> (pid: pid_t, socket: Int32, outputs: [Int32]) {
        try SpawnThread.shared.run { Result { () throws(PluginLoadError) in try posixSpawn(arguments, environment: environment) } }.get()
    }

    /// posix_spawn with the signal mask and dispositions reset (`ProcessRunner.withCleanSignals`),
    /// the socket to the server on fds 3 (requests) and 4 (answers), and stdout and stderr on pipes of their own (returned
    /// last, read ends), so a model's `print` can neither corrupt the protocol nor mix with the server's log.
    private static func posixSpawn(_ arguments: [String], environment given: [String: String]) throws(PluginLoadError) -> (
        pid: pid_t, socket: Int32, outputs: [Int32]
    ) {
        var sockets: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sockets) == 0 else {
            throw PluginLoadError("cannot create the worker's socket: \(String(cString: strerror(errno)))")
        }
        // Keep the descriptors above 4, so that dup2 onto 3 and 4 never meets itself.
        for index in 0..<2 {
            let moved = fcntl(sockets[index], F_DUPFD_CLOEXEC, 10)
            Glibc.close(sockets[index])
            sockets[index] = moved
        }
        var output: [Int32] = [-1, -1, -1, -1]
        let piped = output.withUnsafeMutableBufferPointer { ends in
            autoserve_pipe_cloexec(ends.baseAddress!) == 0 && autoserve_pipe_cloexec(ends.baseAddress! + 2) == 0
        }
        guard piped else {
            sockets.forEach { Glibc.close($0) }
            output.filter { $0 >= 0 }.forEach { Glibc.close($0) }
            throw PluginLoadError("cannot create the worker's output pipes: \(String(cString: strerror(errno)))")
        }
        defer {
            Glibc.close(output[1])
            Glibc.close(output[3])
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, output[3], 2)
        posix_spawn_file_actions_adddup2(&actions, sockets[1], WorkerMain.requestDescriptor)
        posix_spawn_file_actions_adddup2(&actions, sockets[1], WorkerMain.responseDescriptor)
        // NIO's sockets are not close-on-exec: the worker starts with none of the server's listening socket or clients.
        _ = autoserve_spawn_closefrom(&actions, WorkerMain.responseDescriptor + 1)
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // A crashing model should die at once: the runtime's backtracer can take seconds under load.
        var environment = given
        environment["SWIFT_BACKTRACE"] = "enable=no"
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        let result = ProcessRunner.withCleanSignals(newProcessGroup: false) { attributes in posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp) }
        Glibc.close(sockets[1])
        guard result == 0 else {
            Glibc.close(sockets[0])
            Glibc.close(output[0])
            Glibc.close(output[2])
            throw PluginLoadError("cannot start a worker (\(arguments[0])): \(String(cString: strerror(result)))")
        }
        return (pid, sockets[0], [output[0], output[2]])
    }
}
