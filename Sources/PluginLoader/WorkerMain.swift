#if canImport(Glibc)
import Glibc
#endif
import CGitShims
import Foundation

/// The body of `autoserve worker`: one model version in its own process.
///
/// It loads the plugin, runs `init(path:)`, says hello, then answers predict frames from fd 3 on fd 4,
/// several at a time (`WorkerLoop`). A trap in the model kills only this process. It exits when the server closes its pipe,
/// and the kernel kills it if the server dies first.
public enum WorkerMain {
    public static let requestDescriptor: Int32 = 3
    public static let responseDescriptor: Int32 = 4

    public static func run(library path: String, entrySymbol: String, folder: String) -> Never {
        closeInheritedDescriptors()
        _ = autoserve_kill_me_with_parent()
        if getppid() == 1 { exit(0) }
        signal(SIGPIPE, SIG_IGN)
        // A process this worker starts (a model's own subprocess) must not hold the server's socket open.
        _ = fcntl(requestDescriptor, F_SETFD, FD_CLOEXEC)
        _ = fcntl(responseDescriptor, F_SETFD, FD_CLOEXEC)
        let model: InProcessModel
        do {
            let library = try PluginLibrary.open(path: path, entrySymbol: entrySymbol)
            var error: UnsafeMutablePointer<CChar>?
            guard let instance = library.create(folder, &error) else {
                let message = error.map { String(cString: $0) } ?? "init(path:) failed"
                _ = WorkerFrame.write(WorkerFrame(id: 0, code: WorkerFrame.startFailed, payload: Array(message.utf8)), to: responseDescriptor)
                exit(1)
            }
            model = InProcessModel(library: library, instance: instance)
        } catch {
            _ = WorkerFrame.write(WorkerFrame(id: 0, code: WorkerFrame.startFailed, payload: Array(error.message.utf8)), to: responseDescriptor)
            exit(1)
        }
        guard WorkerFrame.write(WorkerFrame(id: 0, code: 0, payload: []), to: responseDescriptor) else { exit(0) }
        WorkerLoop(model: model).run()
    }

    /// Closes every descriptor above 4 that the server happened to have open when this worker started.
    ///
    /// Foundation notices a child's exit by end-of-file on a socket only that child should hold; a worker
    /// spawned at the same moment would inherit it and keep it open, and the server would wait forever for a
    /// build that had finished.
    static func closeInheritedDescriptors() {
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.compactMap { Int32($0) }
        for descriptor in open ?? Array(5..<1024) where descriptor > responseDescriptor {
            _ = close(descriptor)
        }
    }
}
