import Foundation
import NIOCore
import NIOPosix
import PluginBuilder
import PluginRuntime
import ServingCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One worker process and the socket to it, a NIO channel: rows are multiplexed by id and answered in any order.
///
/// Nothing here blocks an event loop. Rows leave through the channel, which queues what the worker has not read
/// yet; past `maximumUnsentBytes` of those a row is refused at once with 503 (the worker is far behind, or hung
/// with its socket full) instead of growing the queue.
///
/// A row's timeout counts from the moment the worker runs it, not from when it was sent: a call that runs longer
/// than a millisecond is announced by the worker (`WorkerFrame.running`), and its deadline starts then. A row that
/// waits behind slow ones (a batch, another client's) thus never makes the model look hung. A worker that answers
/// nothing at all for twice the timeout while rows wait (stopped, or hung outside a call) is killed as hung.
///
/// When the stream ends, the worker is reaped without blocking (`waitpid` with `WNOHANG` on the loop's timer), every
/// request still waiting fails with 503, and the owner is told, so that the worker is restarted.
final class WorkerConnection: DeadlineWatched, Sendable {
    /// The bytes of rows a worker has not read yet past which its next rows get 503 `model_overloaded`.
    static let maximumUnsentBytes = 1 << 20

    let pid: pid_t
    /// The socket's descriptor number, owned by the channel (tests check that it is never written after the end).
    let socket: Int32
    let modelName: String
    /// When the process was spawned, to tell a worker that dies at once from one that served for a while.
    let startedAt = ContinuousClock.now
    /// A request sent and not yet answered: who is told the answer, and until when (from when the worker said it
    /// runs the row; 0 before). Times are `Monotonic` nanoseconds: plain integers on the request path.
    struct Waiting {
        var completion: @Sendable (Prediction) -> Void
        var sentAt: Int64
        var deadline: Int64 = 0
        var timeout: Int64
    }

    /// The requests waiting for answers and the frames waiting to leave, under one lock: a row takes it
    /// once when it is sent and once with the other answers of its worker's read.
    ///
    /// Each waiting completion runs exactly once, called by whoever removes it from `pending`. Frames wait in the
    /// outbox and leave together at the end of the channel's loop turn, so that the worker wakes once per turn
    /// rather than once per row.
    private let state = Mutex<State>(State())
    struct State {
        var pending = PendingRequests<Waiting>()
        var outbox: [UInt8] = []
        var outboxIDs: [UInt64] = []
        var flushScheduled = false
        /// Bytes handed to the channel (or waiting in the outbox) that the socket has not taken yet.
        var unsentBytes = 0
        /// The socket's channel, set as it is made (before any read: the hello and the end cannot pass by).
        var channel: (any Channel)?
        /// When the worker last wrote a frame, or a row was sent to it while none waited: the worker's progress.
        var lastHeard = Monotonic.now()
    }
    /// Set before the server kills the worker on purpose, so its exit is not reported as a crash.
    let plannedExit = Mutex<WorkerExit?>(nil)
    private let hello = Mutex<Hello>(Hello())
    /// The start's outcome, whichever comes first: the hello (or the end) before `start` waits for it, or after.
    struct Hello {
        var continuation: CheckedContinuation<Result<Void, PluginLoadError>, Never>?
        var result: Result<Void, PluginLoadError>?
    }
    /// Whether the worker said hello: only a started worker's exit is reported to its owner.
    private let started = Atomic<Bool>(false)
    private let onExit: @Sendable (WorkerExit) -> Void

    /// The worker's private temporary folder (its `TMPDIR`), removed when it exits.
    let temporaryFolder: String?
    /// The sandbox's layers as the worker's hello named them ("landlock 7, limits, seccomp", or "off").
    let sandboxLayers = Mutex<String>("")

    private init(pid: pid_t, socket: Int32, modelName: String, temporaryFolder: String?, onExit: @escaping @Sendable (WorkerExit) -> Void) {
        self.pid = pid
        self.socket = socket
        self.modelName = modelName
        self.temporaryFolder = temporaryFolder
        self.onExit = onExit
    }

    /// Spawns `autoserve-worker …` with a clean signal mask and waits for its hello.
    static func start(
        executable: String,
        plugin: BuiltPlugin,
        environment givenEnvironment: [String: String],
        sandbox givenSandbox: SandboxPolicy,
        temporaryRoot: String,
        output: ModelOutputLog,
        startTimeout: Duration,
        onExit: @escaping @Sendable (WorkerExit) -> Void
    ) async throws(PluginLoadError) -> WorkerConnection {
        let definition = plugin.definition
        var sandbox = givenSandbox
        var environment = givenEnvironment
        // A confined worker writes only to a folder of its own (docs/operations.md, "The sandbox"), its TMPDIR.
        if sandbox.mode != .off {
            let folder = try makeTemporaryFolder(in: temporaryRoot)
            sandbox.temporaryFolder = folder
            environment["TMPDIR"] = folder
        }
        let arguments =
            [executable, "--library", plugin.libraryPath, "--entry-symbol", definition.entrySymbol, "--folder", definition.folder] + sandbox.arguments
        let spawned: (pid: pid_t, socket: Int32, outputs: [Int32])
        do throws(PluginLoadError) {
            spawned = try spawn(arguments, environment: environment)
        } catch {
            sandbox.temporaryFolder.map(removeTemporaryFolder)
            throw error
        }
        let (pid, socket, outputs) = spawned
        // The worker's standard output and error, a line per log event.
        for (descriptor, stream) in zip(outputs, ["stdout", "stderr"]) { output.attach(descriptor, stream: stream) }
        let connection = WorkerConnection(
            pid: pid, socket: socket, modelName: definition.name.rawValue, temporaryFolder: sandbox.temporaryFolder, onExit: onExit)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    connection.state.withLock { $0.channel = channel }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers([
                            ByteToMessageHandler(WorkerFrameDecoder()), WorkerChannelHandler(connection: connection),
                        ])
                    }
                }
                .withConnectedSocket(socket).get()
        } catch {
            Glibc.close(socket)
            _ = Glibc.kill(pid, SIGKILL)
            var status: Int32 = 0
            // Killed a moment ago: the wait is as short as a kill (and this is a task, not an event loop).
            while waitpid(pid, &status, 0) < 0, errno == EINTR {}
            sandbox.temporaryFolder.map(removeTemporaryFolder)
            throw PluginLoadError("the server could not read its worker's socket: \(error)")
        }
        let started: Result<Void, PluginLoadError> = await withCheckedContinuation { continuation in
            // The hello may have come (or the worker ended) already: then its result waits for this continuation.
            let early = connection.hello.withLock { hello in
                if hello.result == nil { hello.continuation = continuation }
                return hello.result
            }
            if let early { continuation.resume(returning: early) }
            DeadlineWatchdog.shared.watch(connection)
            channel.eventLoop.scheduleTask(in: TimeAmount(startTimeout)) {
                if connection.answerHello(.failure(PluginLoadError("the worker did not start within \(startTimeout)"))) {
                    connection.kill(because: .timedOut)
                }
            }
        }
        try started.get()
        return connection
    }

    /// Sends one row, answered within `timeout` or the worker is killed: `completion` gets the answer on an
    /// event loop, or the 504 from the `DeadlineWatchdog` (no timer per request), or the 503 when the worker
    /// is gone or too far behind.
    func send(_ variables: [UInt8], explain: Bool = false, timeout: Duration, completion: @escaping @Sendable (Prediction) -> Void) {
        let now = Monotonic.now()
        let waiting = Waiting(completion: completion, sentAt: now, timeout: timeout.nanoseconds)
        let queued = state.withLock { state -> (accepted: Bool, scheduleFlush: Bool, channel: (any Channel)?) in
            guard state.unsentBytes < Self.maximumUnsentBytes else { return (false, false, nil) }
            if state.pending.count == 0 { state.lastHeard = now }
            let id = state.pending.insert(waiting)
            let before = state.outbox.count
            WorkerFrame(id: id, code: explain ? WorkerFrame.explain : WorkerFrame.predict, payload: variables).append(to: &state.outbox)
            state.unsentBytes += state.outbox.count - before
            state.outboxIDs.append(id)
            defer { state.flushScheduled = true }
            return (true, !state.flushScheduled, state.channel)
        }
        guard queued.accepted else {
            completion(
                .failure(
                    PredictionFailure(
                        .overloaded,
                        "the worker of \(modelName) is behind: over \(Self.maximumUnsentBytes >> 20) MiB of rows it has not read yet; "
                            + "retry shortly, or give the model more workers in its model.yaml"
                    )))
            return
        }
        // On the channel's own loop this runs at the end of the current turn, with the rows of the whole turn.
        if queued.scheduleFlush, let channel = queued.channel { channel.eventLoop.execute { self.flushOutbox(on: channel) } }
    }

    /// Writes the frames waiting in the outbox; when the worker is gone, their requests fail at once with 503.
    private func flushOutbox(on channel: any Channel) {
        let (bytes, ids) = state.withLock { state in
            state.flushScheduled = false
            defer { (state.outbox, state.outboxIDs) = ([], []) }
            return (state.outbox, state.outboxIDs)
        }
        guard !bytes.isEmpty else { return }
        channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).whenComplete { result in
            let failed = self.state.withLock { state -> [Waiting] in
                state.unsentBytes -= bytes.count
                guard case .failure = result else { return [] }
                return ids.compactMap { state.pending.remove($0) }
            }
            for waiting in failed {
                waiting.completion(.failure(PredictionFailure(.unavailable, "the worker of \(self.modelName) is gone; it is restarting, retry shortly")))
            }
        }
    }

    /// The frames the worker wrote in one go: each answer completes its request; a `running` frame starts its
    /// row's deadline.
    func deliver(answers: [WorkerFrame]) {
        let now = Monotonic.now()
        let waiting = state.withLock { state in
            state.lastHeard = now
            return answers.map { frame -> Waiting? in
                guard frame.code != WorkerFrame.running else {
                    state.pending.modify(frame.id) { $0.deadline = now + $0.timeout }
                    return nil
                }
                return state.pending.remove(frame.id)
            }
        }
        for (answer, waiting) in zip(answers, waiting) {
            waiting?.completion(Prediction(status: Int32(answer.code), bytes: answer.payload))
        }
    }

    /// Answers every request still waiting with `failure`; an answer the worker gives later completes nothing.
    func abandonPending(_ failure: PredictionFailure) {
        for waiting in state.withLock({ $0.pending.removeAll { _ in true } }) { waiting.completion(.failure(failure)) }
    }

    /// Fails every request past its deadline with 504 and restarts the worker that hangs on them; so too, when the
    /// worker has written nothing for twice the timeout while rows wait for it, the rows it never started.
    func expireOverdue(at _: ContinuousClock.Instant) {
        let now = Monotonic.now()
        let overdue = state.withLock { state in
            let lastHeard = state.lastHeard
            return state.pending.removeAll { waiting in
                if waiting.deadline != 0 { return waiting.deadline <= now }
                return now - max(waiting.sentAt, lastHeard) > 2 * waiting.timeout
            }
        }
        guard !overdue.isEmpty else { return }
        kill(because: .timedOut)
        for waiting in overdue {
            let message =
                waiting.deadline == 0
                ? "the worker of \(modelName) answered nothing for twice its timeout of \(waiting.timeout / 1_000_000) ms while rows waited; it was restarted"
                : "\(modelName) took longer than its timeout of \(waiting.timeout / 1_000_000) ms; its worker was restarted"
            waiting.completion(.failure(PredictionFailure(.timeout, message)))
        }
    }

    /// Stops the worker with SIGKILL (a child may block SIGTERM) and records why; the channel closes at once, even
    /// if some other process still holds the worker's end of the socket.
    func kill(because reason: WorkerExit) {
        plannedExit.withLock { if $0 == nil { $0 = reason } }
        _ = Glibc.kill(pid, SIGKILL)
        state.withLock { $0.channel }?.close(promise: nil)
    }

    /// Ends the request direction: the worker finishes what it has and exits.
    func close() {
        plannedExit.withLock { if $0 == nil { $0 = .stopped } }
        state.withLock { $0.channel }?.close(mode: .output, promise: nil)
    }

    /// The worker's hello: it started, or says why it could not.
    func greeted(_ frame: WorkerFrame) {
        let result: Result<Void, PluginLoadError> =
            frame.code == WorkerFrame.started
            ? .success(()) : .failure(PluginLoadError(String(decoding: frame.payload, as: UTF8.self)))
        if frame.code == WorkerFrame.started {
            sandboxLayers.withLock { $0 = String(decoding: frame.payload, as: UTF8.self) }
            started.store(true, ordering: .releasing)
        }
        answerHello(result)
    }

    /// Gives the start its outcome, unless it has one; `true` when this was the outcome.
    @discardableResult
    func answerHello(_ result: Result<Void, PluginLoadError>) -> Bool {
        let (first, waiting) = hello.withLock { hello -> (Bool, CheckedContinuation<Result<Void, PluginLoadError>, Never>?) in
            guard hello.result == nil else { return (false, nil) }
            hello.result = result
            return (true, hello.continuation.take())
        }
        waiting?.resume(returning: result)
        return first
    }

    /// The stream ended (the worker exited, was killed, or closed its socket): reaps the worker and reports how it
    /// ended. A worker still running a second later cannot serve without its socket and is killed.
    func ended(on loop: any EventLoop) {
        DeadlineWatchdog.shared.forget(self)
        reap(on: loop, attempt: 0)
    }

    private func reap(on loop: any EventLoop, attempt: Int) {
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == 0 {
            if attempt == 100 { plannedExit.withLock { if $0 == nil { $0 = .crashed("it closed its socket to the server") } } }
            if attempt >= 100 { _ = Glibc.kill(pid, SIGKILL) }
            loop.scheduleTask(in: .milliseconds(10)) { self.reap(on: loop, attempt: attempt + 1) }
            return
        }
        temporaryFolder.map(Self.removeTemporaryFolder)
        let exit = plannedExit.withLock { $0 } ?? .crashed(WorkerExit.describe(status))
        answerHello(.failure(PluginLoadError("the worker exited during start: \(WorkerExit.describe(status))")))
        let message = exit.message(model: modelName)
        for waiting in state.withLock({ $0.pending.removeAll { _ in true } }) {
            waiting.completion(.failure(PredictionFailure(.unavailable, message)))
        }
        if started.load(ordering: .acquiring) { onExit(exit) }
    }

    /// A new folder `autoserve-worker-XXXXXX` under `root`, mode 0700.
    static func makeTemporaryFolder(in root: String) throws(PluginLoadError) -> String {
        var template = Array("\(root)/autoserve-worker-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw PluginLoadError("cannot make the worker's temporary folder in \(root): \(String(cString: strerror(errno))); set TMPDIR to a writable folder")
        }
        let folder = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        liveTemporaryFolders.withLock { _ = $0.insert(folder) }
        return folder
    }

    /// Empties and removes a worker's temporary folder once the worker is gone.
    static func removeTemporaryFolder(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
        liveTemporaryFolders.withLock { _ = $0.remove(path) }
    }

    /// The temporary folders of the workers not reaped yet.
    private static let liveTemporaryFolders = Mutex<Set<String>>([])

    /// Removes the temporary folders of the workers still running or not reaped yet (`ProcessLoader.processEnds`).
    static func removeLeftoverTemporaryFolders() {
        for folder in liveTemporaryFolders.withLock({ $0 }) { removeTemporaryFolder(folder) }
    }

    /// The worker's resident memory in bytes, from /proc.
    var residentBytes: Int? {
        guard let statm = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8) else { return nil }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// Monotonic nanoseconds (`CLOCK_MONOTONIC`): the request path's timestamps, plain integers rather than
/// `ContinuousClock.Instant`, whose optional and arithmetic went through the runtime's generic witnesses per row.
enum Monotonic {
    @inline(__always)
    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
