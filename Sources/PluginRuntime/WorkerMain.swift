import CSystemShims

#if canImport(Glibc)
    import Glibc
#endif

/// The body of `autoserve-worker`: one model version in its own process.
///
/// It loads the plugin, runs `init(path:)`, says hello, then answers predict frames from fd 3 on fd 4,
/// several at a time (`WorkerLoop`). A trap in the model kills only this process. It exits when the server
/// closes its pipe, and the kernel kills it if the server dies first; it ignores SIGINT, SIGTERM and SIGHUP.
public enum WorkerMain {
    public static let requestDescriptor: Int32 = 3
    public static let responseDescriptor: Int32 = 4

    public static func run(library path: String, entrySymbol: String, folder: String, sandbox: SandboxPolicy) -> Never {
        // A stop is the server's to make: a signal to the whole process group (a terminal's Ctrl-C, systemd's
        // KillMode=control-group, `tini -g`) must not end the workers under the requests the server still answers.
        // The server stops them by closing their socket; they die with it through the parent-death signal.
        for stop in [SIGINT, SIGTERM, SIGHUP] { signal(stop, SIG_IGN) }
        closeInheritedDescriptors()
        _ = autoserve_kill_me_with_parent()
        if getppid() == 1 { exit(0) }
        signal(SIGPIPE, SIG_IGN)
        // The output goes to a pipe the server reads line by line: a line goes out when it ends, so a worker
        // that is killed loses no line it finished.
        autoserve_line_buffer_stdout()
        // Woken by a row, a worker would preempt the event loop that sent it, before that loop has sent the
        // rest of its turn's rows: a switch per row each way, and rows answered one at a time. As a batch
        // thread it runs when the loop waits or on an idle core, and answers the whole turn's rows at once.
        _ = autoserve_schedule_as_batch()
        // A process this worker starts (a model's own subprocess) must not hold the server's socket open.
        _ = fcntl(requestDescriptor, F_SETFD, FD_CLOEXEC)
        _ = fcntl(responseDescriptor, F_SETFD, FD_CLOEXEC)
        let instance: PluginInstance
        let layers: [String]
        do {
            let library = try PluginLibrary.open(path: path, entrySymbol: entrySymbol)
            // The libraries are loaded and the model's code has not run: from here on it runs confined.
            layers = try WorkerSandbox.apply(sandbox, folder: folder)
            instance = try library.instantiate(folder: folder)
        } catch {
            _ = WorkerFrame.write(WorkerFrame(id: 0, code: WorkerFrame.startFailed, payload: Array(error.message.utf8)), to: responseDescriptor)
            exit(1)
        }
        // The hello names the sandbox's layers, which the index shows (docs/operations.md, "The sandbox").
        let hello = WorkerFrame(id: 0, code: WorkerFrame.started, payload: Array(layers.joined(separator: ", ").utf8))
        guard WorkerFrame.write(hello, to: responseDescriptor) else { exit(0) }
        WorkerLoop(instance: instance).run()
    }

    /// Closes every descriptor above 4 that the server happened to have open when this worker started.
    ///
    /// Foundation notices a child's exit by end-of-file on a socket only that child should hold; a worker
    /// spawned at the same moment would inherit it and keep it open, and the server would wait forever for a
    /// build that had finished.
    static func closeInheritedDescriptors() {
        var open: [Int32] = []
        if let directory = opendir("/proc/self/fd") {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if let descriptor = Int32(name) { open.append(descriptor) }
            }
            closedir(directory)
        } else {
            open = Array(5..<1024)
        }
        for descriptor in open where descriptor > responseDescriptor {
            _ = close(descriptor)
        }
    }
}
