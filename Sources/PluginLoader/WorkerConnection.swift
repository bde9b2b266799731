#if canImport(Glibc)
import Glibc
#endif
import CSystemShims
import Foundation
import NIOCore
import NIOPosix
import PluginBuilder
import PluginRuntime
import ServingCore
import Synchronization

/// Why a worker process stopped, as the index, the metrics and the failed requests say it.
enum WorkerExit: Sendable {
    case crashed(String)
    case timedOut
    case overMemory(Int)
    case stopped

    /// What happened, for the log: the signal or exit status, the memory limit.
    var detail: String {
        switch self {
        case .crashed(let how): how
        case .timedOut: "a request passed its timeout"
        case .overMemory(let megabytes): "over memory_mb (\(megabytes) MB)"
        case .stopped: "stopped"
        }
    }

    var cause: String {
        switch self {
        case .crashed: "crash"
        case .timedOut: "timeout"
        case .overMemory: "memory"
        case .stopped: "stopped"
        }
    }
}

/// One worker process and the pipes to it: requests are multiplexed by id and answered in any order.
///
/// A reader thread delivers answers; when the pipe ends it reaps the process and fails every request still
/// waiting with 503, then tells its owner so that the worker is restarted.
final class WorkerConnection: DeadlineWatched, @unchecked Sendable {
    let pid: pid_t
    let requestDescriptor: Int32
    let responseDescriptor: Int32
    let modelName: String
    /// When the process was spawned, to tell a worker that dies at once from one that served for a while.
    let startedAt = ContinuousClock.now
    /// A request sent and not yet answered: who is told the answer, and until when.
    struct Waiting {
        var completion: @Sendable (Prediction) -> Void
        var deadline: ContinuousClock.Instant
        var timeout: Duration
    }

    /// The requests waiting for answers and the frames waiting to leave, under one lock: a row takes it
    /// once when it is sent and once with the other answers of its worker's write.
    ///
    /// Each waiting completion runs exactly once, called by whoever removes it from `pending`. Frames sent
    /// from an event loop wait in the outbox and leave together at the end of the loop's turn, so that the
    /// worker wakes once per turn rather than once per row.
    private let state = Mutex<State>(State())
    struct State {
        var pending = PendingRequests<Waiting>()
        var outbox: [UInt8] = []
        var outboxIDs: [UInt64] = []
        var flushScheduled = false
    }
    /// Serializes writes, so that frames from several threads never interleave on the socket.
    private let writing = NSLock()
    /// Whether the socket's descriptor is still open, and how many writes are under way on it.
    ///
    /// The kernel hands a closed descriptor's number to the next socket it opens (the next client's
    /// connection, say), so the descriptor is closed only once the reader has ended and no write can reach
    /// it: a late write then finds it closed instead of sending a worker frame to a stranger.
    private let descriptor = Mutex<DescriptorState>(DescriptorState())
    struct DescriptorState {
        var open = true
        var writers = 0
    }
    /// Set before the server kills the worker on purpose, so its exit is not reported as a crash.
    let plannedExit = Mutex<WorkerExit?>(nil)
    private let hello = Mutex<CheckedContinuation<Result<Void, PluginLoadError>, Never>?>(nil)
    /// Whether the worker said hello: only a started worker's exit is reported to its owner.
    private let started = Atomic<Bool>(false)
    private let onExit: @Sendable (WorkerExit) -> Void

    private init(pid: pid_t, requestDescriptor: Int32, responseDescriptor: Int32, modelName: String, onExit: @escaping @Sendable (WorkerExit) -> Void) {
        self.pid = pid
        self.requestDescriptor = requestDescriptor
        self.responseDescriptor = responseDescriptor
        self.modelName = modelName
        self.onExit = onExit
    }

    /// Spawns `autoserve-worker …` with a clean signal mask and waits for its hello.
    static func start(
        executable: String,
        plugin: BuiltPlugin,
        environment: [String: String],
        output: ModelOutputLog?,
        startTimeout: Duration,
        onExit: @escaping @Sendable (WorkerExit) -> Void
    ) async throws(PluginLoadError) -> WorkerConnection {
        let definition = plugin.definition
        let arguments = [
            executable, "--library", plugin.libraryPath, "--entry-symbol", definition.entrySymbol, "--folder", definition.folder,
        ]
        let (pid, requestFD, responseFD, outputs) = try spawn(arguments, environment: environment)
        // The worker's standard output and error, a line per log event; without a log, to the server's stderr.
        for (descriptor, stream) in zip(outputs, ["stdout", "stderr"]) {
            if let output { output.attach(descriptor, stream: stream) } else { Self.forward(descriptor) }
        }
        let connection = WorkerConnection(pid: pid, requestDescriptor: requestFD, responseDescriptor: responseFD, modelName: definition.name.rawValue, onExit: onExit)
        let started: Result<Void, PluginLoadError> = await withCheckedContinuation { continuation in
            connection.hello.withLock { $0 = continuation }
            DeadlineWatchdog.shared.watch(connection)
            connection.attachReader()
            Task {
                try? await Task.sleep(for: startTimeout)
                if let waiting = connection.hello.withLock({ $0.take() }) {
                    connection.kill(because: .timedOut)
                    waiting.resume(returning: .failure(PluginLoadError("the worker did not start within \(startTimeout)")))
                }
            }
        }
        try started.get()
        return connection
    }

    /// Sends one row, answered within `timeout` or the worker is killed: `completion` gets the answer on an
    /// event loop, or the 504 from the `DeadlineWatchdog` (no timer per request), or the 503 when the worker
    /// is gone.
    func send(_ variables: [UInt8], timeout: Duration, completion: @escaping @Sendable (Prediction) -> Void) {
        let waiting = Waiting(completion: completion, deadline: .now + timeout, timeout: timeout)
        guard let loop = MultiThreadedEventLoopGroup.currentEventLoop else {
            let id = state.withLock { $0.pending.insert(waiting) }
            write(WorkerFrame(id: id, code: WorkerFrame.predict, payload: variables).encoded(), ids: [id])
            return
        }
        let scheduleFlush = state.withLock { state in
            let id = state.pending.insert(waiting)
            WorkerFrame(id: id, code: WorkerFrame.predict, payload: variables).append(to: &state.outbox)
            state.outboxIDs.append(id)
            defer { state.flushScheduled = true }
            return !state.flushScheduled
        }
        if scheduleFlush { loop.execute { self.flushOutbox() } }
    }

    /// Writes the frames waiting in the outbox.
    private func flushOutbox() {
        let (bytes, ids) = state.withLock { state in
            state.flushScheduled = false
            defer { (state.outbox, state.outboxIDs) = ([], []) }
            return (state.outbox, state.outboxIDs)
        }
        write(bytes, ids: ids)
    }

    /// The answers the worker wrote in one go: each completes its request.
    fileprivate func deliver(answers: [WorkerFrame]) {
        let waiting = state.withLock { state in answers.map { state.pending.remove($0.id) } }
        for (answer, waiting) in zip(answers, waiting) {
            waiting?.completion(InProcessModel.prediction(status: Int32(answer.code), bytes: answer.payload))
        }
    }

    /// Writes frames to the worker; when it is gone, their requests fail at once with 503.
    private func write(_ bytes: [UInt8], ids: [UInt64]) {
        guard !bytes.isEmpty else { return }
        let open = descriptor.withLock { state in
            if state.open { state.writers += 1 }
            return state.open
        }
        var written = false
        if open {
            written = writing.withLock { WorkerFrame.write(bytes, to: requestDescriptor) }
            releaseDescriptor { $0.writers -= 1 }
        }
        guard !written else { return }
        for waiting in state.withLock({ state in ids.compactMap { state.pending.remove($0) } }) {
            waiting.completion(.failure(PredictionFailure(.unavailable, "the worker of \(modelName) is gone; it is restarting, retry shortly")))
        }
    }

    /// Answers every request still waiting with `failure`; an answer the worker gives later completes nothing.
    func abandonPending(_ failure: PredictionFailure) {
        for waiting in state.withLock({ $0.pending.removeAll { _ in true } }) { waiting.completion(.failure(failure)) }
    }

    /// Fails every request past its deadline with 504 and restarts the worker that hangs on them.
    func expireOverdue(at now: ContinuousClock.Instant) {
        let overdue = state.withLock { $0.pending.removeAll { $0.deadline <= now } }
        guard !overdue.isEmpty else { return }
        kill(because: .timedOut)
        for waiting in overdue {
            waiting.completion(.failure(PredictionFailure(
                .timeout, "\(modelName) took longer than its timeout of \(waiting.timeout.milliseconds) ms; its worker was restarted"
            )))
        }
    }

    /// Stops the worker with SIGKILL (a child may block SIGTERM) and records why.
    func kill(because reason: WorkerExit) {
        plannedExit.withLock { if $0 == nil { $0 = reason } }
        _ = Glibc.kill(pid, SIGKILL)
        // Wake the reader and any blocked writer now, even if some other process still holds the worker's end
        // of the socket. Under the descriptor's lock: never a shutdown of a number the kernel gave to another.
        descriptor.withLock { state in if state.open { _ = shutdown(responseDescriptor, Int32(SHUT_RDWR)) } }
    }

    /// Ends the request direction: the worker finishes what it has and exits.
    func close() {
        plannedExit.withLock { if $0 == nil { $0 = .stopped } }
        descriptor.withLock { state in if state.open { _ = shutdown(requestDescriptor, Int32(SHUT_WR)) } }
    }

    /// Changes the descriptor's state and closes it once it is marked closed and no write is under way.
    private func releaseDescriptor(_ change: (inout DescriptorState) -> Void) {
        descriptor.withLock { state in
            let wasOpen = state.open || state.writers > 0
            change(&state)
            if wasOpen, !state.open, state.writers == 0 { Glibc.close(responseDescriptor) }
        }
    }

    /// Reads the answers on the server's event loops, which are awake anyway while requests come in: no
    /// thread of its own to wake per answer. NIO reads a duplicate of the socket, so sends stay direct calls.
    private func attachReader() {
        let input = dup(responseDescriptor)
        NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(AnswerHandler(connection: self)) }
            }
            .takingOwnershipOfDescriptor(input: input)
            .whenFailure { error in
                Glibc.close(input)
                self.kill(because: .crashed("the server could not read its answers: \(error)"))
                Thread.detachNewThread { self.readerEnded() }
            }
    }

    /// The worker's hello: it started, or says why it could not.
    fileprivate func greeted(_ frame: WorkerFrame) {
        let result: Result<Void, PluginLoadError> = frame.code == 0
            ? .success(()) : .failure(PluginLoadError(String(decoding: frame.payload, as: UTF8.self)))
        if frame.code == 0 { started.store(true, ordering: .releasing) }
        hello.withLock { $0.take() }?.resume(returning: result)
    }

    /// The answers ended: reaps the worker (on its own thread, `waitpid` blocks) and reports how it ended.
    fileprivate func readerEnded() {
        DeadlineWatchdog.shared.forget(self)
        releaseDescriptor { $0.open = false }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let exit = plannedExit.withLock { $0 } ?? .crashed(Self.describe(status))
        let message: String
        switch exit {
        case .crashed(let how): message = "\(modelName) crashed (\(how)) while serving this request; its worker is restarting"
        case .timedOut: message = "\(modelName)'s worker was restarted because a request took longer than its timeout"
        case .overMemory(let megabytes): message = "\(modelName)'s worker was stopped for using more than memory_mb (\(megabytes) MB)"
        case .stopped: message = "\(modelName)'s worker stopped"
        }
        if let waiting = hello.withLock({ $0.take() }) {
            waiting.resume(returning: .failure(PluginLoadError("the worker exited during start: \(Self.describe(status))")))
        }
        for waiting in state.withLock({ $0.pending.removeAll { _ in true } }) {
            waiting.completion(.failure(PredictionFailure(.unavailable, message)))
        }
        if started.load(ordering: .acquiring) { onExit(exit) }
    }

    static func describe(_ status: Int32) -> String {
        let signal = status & 0x7F
        if signal != 0 {
            let name = strsignal(signal).map { String(cString: $0) } ?? "unknown"
            return "signal \(signal), \(name)"
        }
        return "exit status \((status >> 8) & 0xFF)"
    }

    /// Starts a worker from the `SpawnThread`, so that its parent-death signal waits for the server's end.
    static func spawn(_ arguments: [String], environment: [String: String]) throws(PluginLoadError) -> (pid_t, Int32, Int32, [Int32]) {
        try SpawnThread.shared.run { Result { () throws(PluginLoadError) in try posixSpawn(arguments, environment: environment) } }.get()
    }

    /// Copies what a worker prints to the server's standard error as it is (no model log configured: tests).
    static func forward(_ descriptor: Int32) {
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                _ = buffer.withUnsafeBytes { Glibc.write(2, $0.baseAddress, count) }
            }
            Glibc.close(descriptor)
        }
    }

    /// posix_spawn with the signal mask and dispositions reset (the spawning thread blocks most signals),
    /// the request pipe on fd 3, the answer pipe on fd 4, and stdout and stderr on pipes of their own (returned
    /// last, read ends), so a model's `print` can neither corrupt the protocol nor mix with the server's log.
    private static func posixSpawn(_ arguments: [String], environment given: [String: String]) throws(PluginLoadError) -> (pid_t, Int32, Int32, [Int32]) {
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
        defer { Glibc.close(output[1]); Glibc.close(output[3]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, output[3], 2)
        posix_spawn_file_actions_adddup2(&actions, sockets[1], WorkerMain.requestDescriptor)
        posix_spawn_file_actions_adddup2(&actions, sockets[1], WorkerMain.responseDescriptor)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var everySignal = sigset_t()
        sigfillset(&everySignal)
        posix_spawnattr_setsigdefault(&attributes, &everySignal)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // A crashing model should die at once: the runtime's backtracer can take seconds under load.
        var environment = given
        environment["SWIFT_BACKTRACE"] = "enable=no"
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        let result = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
        Glibc.close(sockets[1])
        guard result == 0 else {
            Glibc.close(sockets[0])
            Glibc.close(output[0])
            Glibc.close(output[2])
            throw PluginLoadError("cannot start a worker (\(arguments[0])): \(String(cString: strerror(result)))")
        }
        return (pid, sockets[0], sockets[0], [output[0], output[2]])
    }

    /// The worker's resident memory in bytes, from /proc.
    var residentBytes: Int? {
        guard let statm = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8) else { return nil }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// Something with requests that have deadlines: a worker connection, an in-process model.
protocol DeadlineWatched: AnyObject, Sendable {
    /// Answers the requests whose deadline is past `now` (504).
    func expireOverdue(at now: ContinuousClock.Instant)
}

/// One thread for every request deadline, worker and in-process alike: it looks every 10 ms, so a request costs
/// no timer (a timer per request cost a wake-up of another thread to set and to cancel).
final class DeadlineWatchdog: @unchecked Sendable {
    static let shared = DeadlineWatchdog()
    static let interval: Duration = .milliseconds(10)

    /// Held weakly: an in-process model leaves when its last request and its version are gone.
    private struct Entry {
        weak var watched: (any DeadlineWatched)?
    }

    private let watched = Mutex<[ObjectIdentifier: Entry]>([:])

    private init() {
        // A thread of its own that only sleeps and scans: the one clock for every deadline.
        Thread.detachNewThread { [self] in
            while true {
                Thread.sleep(forTimeInterval: Self.interval.seconds)
                let now = ContinuousClock.now
                for entry in watched.withLock({ Array($0.values) }) { entry.watched?.expireOverdue(at: now) }
            }
        }
    }

    func watch(_ object: any DeadlineWatched) {
        watched.withLock { $0[ObjectIdentifier(object)] = Entry(watched: object) }
    }

    /// Called when nothing of `object` can be waiting any more.
    func forget(_ object: any DeadlineWatched) {
        _ = watched.withLock { $0.removeValue(forKey: ObjectIdentifier(object)) }
    }
}

/// Cuts the worker's byte stream into frames and hands each to its connection; the end of the stream (or a
/// corrupt frame) ends the connection.
final class AnswerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let connection: WorkerConnection
    private var buffer = ByteBuffer()
    private var ended = false

    init(connection: WorkerConnection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        // Frames are read straight from the channel's buffer (which the channel reuses once it is let go);
        // only a frame cut in two waits in `buffer` for its rest.
        if buffer.readableBytes == 0 {
            guard frames(in: &bytes, context: context) else { return }
            if bytes.readableBytes > 0 { buffer.writeBuffer(&bytes) }
        } else {
            buffer.writeBuffer(&bytes)
            guard frames(in: &buffer, context: context) else { return }
            buffer.discardReadBytes()
        }
    }

    /// Hands the whole frames of `bytes` to the connection, leaving a partial one; `false` when the stream
    /// is corrupt and the connection closes.
    private func frames(in bytes: inout ByteBuffer, context: ChannelHandlerContext) -> Bool {
        var answers: [WorkerFrame] = []
        defer { if !answers.isEmpty { connection.deliver(answers: answers) } }
        while let length = bytes.getInteger(at: bytes.readerIndex, endianness: .little, as: UInt32.self) {
            guard length >= 9, length <= WorkerFrame.maximumLength else {
                context.close(promise: nil)
                return false
            }
            guard bytes.readableBytes >= 4 + Int(length) else { break }
            bytes.moveReaderIndex(forwardBy: 4)
            guard let id = bytes.readInteger(endianness: .little, as: UInt64.self), let code = bytes.readInteger(as: UInt8.self),
                let payload = bytes.readBytes(length: Int(length) - 9)
            else { break }
            let frame = WorkerFrame(id: id, code: code, payload: payload)
            if id == 0 {
                connection.greeted(frame)
            } else {
                answers.append(frame)
            }
        }
        return true
    }

    func channelInactive(context: ChannelHandlerContext) {
        guard !ended else { return }
        ended = true
        let connection = connection
        Thread.detachNewThread { connection.readerEnded() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
