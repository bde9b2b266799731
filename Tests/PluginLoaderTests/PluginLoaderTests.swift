import Foundation
import Logging
import PluginBuilder
import PluginRuntime
import ServingCore
import Synchronization
import Testing

@testable import PluginLoader

/// Builds real plugins with swiftc from `models_serve/` and loads them into this process.
@Suite(.serialized)
struct PluginLoaderTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// The variables of an Iris row the model classifies as setosa.
    static let setosa = #"{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}"#

    static func build(_ folderName: String) async throws -> BuiltPlugin {
        let state = NSTemporaryDirectory() + "autoserve-loader-tests"
        let toolchain = try await Toolchain.locate(configured: nil)
        let compiler = PluginCompiler(toolchain: toolchain, stateDirectory: state)
        let sdk = try await compiler.prepareSDK()
        let name = try ModelName(validating: folderName)
        let folder = "\(repository)/models_serve/\(folderName)"
        let definition = try ModelDefinitionReader(buildIdentity: compiler.buildIdentity).definition(name: name, version: "test-\(folderName)", folder: folder)
        return try await compiler.build(definition, sdk: sdk).get()
    }

    @Test func irisBuildsLoadsAndPredicts() async throws {
        let plugin = try await Self.build("Iris")
        let model = try await InProcessLoader().load(plugin)
        let answer = await model.predict(variables: Array(Self.setosa.utf8))
        guard case .output(let bytes) = answer else {
            Issue.record("expected an output, got \(answer)")
            return
        }
        let output = try JSONParser.parse(bytes)
        #expect(output["iris_class"] == .string("setosa"))
    }
}

extension PluginLoaderTests {
    static func buildFixture(_ path: String, name: String) async throws -> Result<BuiltPlugin, ModelBuildError> {
        let state = NSTemporaryDirectory() + "autoserve-loader-tests"
        let compiler = PluginCompiler(toolchain: try await Toolchain.locate(configured: nil), stateDirectory: state)
        let sdk = try await compiler.prepareSDK()
        let definition = try ModelDefinitionReader(buildIdentity: compiler.buildIdentity).definition(
            name: ModelName(validating: name), version: "test-\(name)", folder: "\(repository)/Tests/Fixtures/\(path)"
        )
        return await compiler.build(definition, sdk: sdk)
    }

    /// The glue of a nested type with a labelled, non-throwing function in an extension compiles and runs.
    @Test func goldenScorerBuildsAndPredicts() async throws {
        let model = try await InProcessLoader().load(try await Self.buildFixture("golden/models/Scorer", name: "Scorer").get())
        guard case .output(let bytes) = await model.predict(variables: Array(#"{"x": 4}"#.utf8)) else {
            Issue.record("no output")
            return
        }
        #expect(try JSONParser.parse(bytes) == .object(["y": .number(8)]))
    }

    @Test func aCompileErrorCarriesSwiftcsDiagnostics() async throws {
        let result = try await Self.buildFixture("broken/CompileError", name: "CompileError")
        guard case .failure(let error) = result else {
            Issue.record("it compiled")
            return
        }
        #expect(error.diagnostic.file == "CompileError/etls.swift")
        #expect(error.diagnostic.line == 7)
        #expect(error.log?.contains("etls.swift:7:") == true)
    }

    /// Linux kills a worker (its parent-death signal) when the *thread* that spawned it exits: workers are spawned
    /// from a thread that never does, whichever thread asks (Swift's task threads come and go with the load).
    @Test func aWorkerOutlivesTheThreadThatAskedForIt() async throws {
        let plugin = try await Self.build("Iris")
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("autoserve-worker").path
        let arguments = [
            executable, "--library", plugin.libraryPath, "--entry-symbol", plugin.definition.entrySymbol, "--folder", plugin.definition.folder,
        ]
        let spawned = Mutex<(pid: pid_t, socket: Int32, thread: pid_t)?>(nil)
        // The asking thread waits for the worker's hello (sent after it set its parent-death signal), then ends.
        let asking = Thread {
            guard let (pid, socket, _) = try? WorkerConnection.spawn(arguments, environment: ProcessInfo.processInfo.environment) else { return }
            // The hello whole: its header, then its payload (the sandbox's layers).
            var hello = [UInt8](repeating: 0, count: 13)
            _ = read(socket, &hello, 13)
            var rest = Int(UInt32(hello[0]) | UInt32(hello[1]) << 8 | UInt32(hello[2]) << 16 | UInt32(hello[3]) << 24) - 9
            var layers = [UInt8](repeating: 0, count: 256)
            while rest > 0 {
                let count = read(socket, &layers, min(rest, layers.count))
                guard count > 0 else { break }
                rest -= count
            }
            // This thread's id, from /proc/thread-self (`<pid>/task/<tid>`).
            let thread =
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")).flatMap { pid_t($0.split(separator: "/").last ?? "") } ?? 0
            spawned.withLock { $0 = (pid, socket, thread) }
        }
        asking.start()
        let deadline = ContinuousClock.now + .seconds(30)
        while spawned.withLock({ $0 }) == nil || !asking.isFinished, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let worker = try #require(spawned.withLock { $0 })
        defer {
            kill(worker.pid, SIGKILL)
            var status: Int32 = 0
            waitpid(worker.pid, &status, 0)
            close(worker.socket)
        }
        // Once the thread is gone from /proc, its exit (and any parent-death signal) is over.
        try await eventually("the asking thread has exited") { !FileManager.default.fileExists(atPath: "/proc/self/task/\(worker.thread)") }
        let state = try String(contentsOfFile: "/proc/\(worker.pid)/stat", encoding: .utf8).split(separator: ")").last?.split(separator: " ").first
        #expect(state != "Z", "the worker died with the thread that asked for it")
        let frame = WorkerFrame(id: 7, code: WorkerFrame.predict, payload: Array(Self.setosa.utf8))
        #expect(WorkerFrame.write(frame, to: worker.socket))
        var reader = FrameReader(descriptor: worker.socket)
        let answer = reader.next()
        #expect(answer?.id == 7)
        #expect(answer.map { String(decoding: $0.payload, as: UTF8.self).contains("setosa") } == true)
    }

    @Test func failingExamplesAndThrowingInitializersAreLoadErrors() async throws {
        let example = try await Self.buildFixture("broken/FailingExample", name: "FailingExample").get()
        await #expect { try await InProcessLoader().load(example) } throws: { error in
            (error as? PluginLoadError)?.message.contains("answer: expected 42, got 41") == true
        }
        let throwing = try await Self.buildFixture("broken/ThrowingInit", name: "ThrowingInit").get()
        await #expect { try await InProcessLoader().load(throwing) } throws: { error in
            (error as? PluginLoadError)?.message.contains("init(path:) threw") == true
        }
    }
}

/// The worker protocol's framing over a real socket pair: frames arrive whole however the bytes are cut.
struct FrameReaderTests {
    func socketPair() throws -> (Int32, Int32) {
        var sockets: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &sockets) == 0)
        return (sockets[0], sockets[1])
    }

    @Test func framesArriveWholeWhetherBatchedSplitOrLargerThanTheBuffer() throws {
        let (writer, reader) = try socketPair()
        defer { close(reader) }
        let large = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
        let frames = [
            WorkerFrame(id: 1, code: 1, payload: Array(#"{"a":1}"#.utf8)),
            WorkerFrame(id: 2, code: 0, payload: []),
            WorkerFrame(id: 3, code: 3, payload: large),
            WorkerFrame(id: UInt64.max, code: 2, payload: Array("last".utf8)),
        ]
        let bytes = frames.flatMap { $0.encoded() }
        let sender = Thread {
            // Odd cuts: a header split in two, several frames in one write, the large frame in pieces.
            var offset = 0
            for size in [2, 5, 30, 70_000, 7] + Array(repeating: 4_096, count: 40) where offset < bytes.count {
                let end = min(offset + size, bytes.count)
                _ = bytes[offset..<end].withUnsafeBytes { send(writer, $0.baseAddress, $0.count, 0) }
                offset = end
                usleep(200)
            }
            close(writer)
        }
        sender.start()
        var frameReader = FrameReader(descriptor: reader, capacity: 64)
        for expected in frames {
            let next = frameReader.next()
            let frame = try #require(next)
            #expect(frame.id == expected.id)
            #expect(frame.code == expected.code)
            #expect(frame.payload == expected.payload)
        }
        #expect(frameReader.next() == nil)
    }

    @Test func aCorruptLengthEndsTheStream() {
        var sockets: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &sockets) == 0)
        let (writer, reader) = (sockets[0], sockets[1])
        defer { close(reader) }
        let corrupt: [UInt8] = [3, 0, 0, 0] + Array(repeating: 0, count: 16)
        _ = corrupt.withUnsafeBytes { send(writer, $0.baseAddress, $0.count, 0) }
        close(writer)
        var frameReader = FrameReader(descriptor: reader)
        #expect(frameReader.next() == nil)
    }
}

extension PluginLoaderTests {
    /// A row sent to a worker connection after its worker died must never be written to the descriptor number
    /// the connection had: the kernel hands that number to the next socket opened (a client's connection), which
    /// would then receive a worker frame with another client's row.
    @Test func aDeadWorkersDescriptorIsNeverWrittenAgain() async throws {
        let plugin = try await Self.build("Iris")
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("autoserve-worker").path
        // Other suites open descriptors meanwhile and may take the number first: then the scenario starts over.
        var taken: (connection: WorkerConnection, socket: Int32, peer: Int32, opened: [Int32])?
        for _ in 0..<10 where taken == nil {
            let exited = AsyncStream<WorkerExit>.makeStream()
            let connection = try await WorkerConnection.start(
                executable: executable, plugin: plugin, environment: ProcessInfo.processInfo.environment, sandbox: SandboxPolicy(mode: .strict),
                temporaryRoot: NSTemporaryDirectory(), output: ModelOutputLog(model: "Iris", logger: Logger(label: "test"), metrics: nil),
                startTimeout: .seconds(60)
            ) { exit in exited.continuation.yield(exit) }
            let number = connection.socket
            _ = kill(connection.pid, SIGKILL)
            var exits = exited.stream.makeAsyncIterator()
            _ = await exits.next()
            // The kernel gives the lowest free number: new sockets take the closed one, as an accepted client
            // connection would.
            var opened: [Int32] = []
            while taken == nil, opened.count < 256 {
                var pair: [Int32] = [-1, -1]
                guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { break }
                opened += pair
                if pair[0] == number { taken = (connection, pair[0], pair[1], opened) }
                if pair[1] == number { taken = (connection, pair[1], pair[0], opened) }
                if pair.allSatisfy({ $0 > number }) { break }
            }
            if taken == nil { opened.forEach { close($0) } }
        }
        guard let (connection, _, peer, opened) = taken else {
            Issue.record("the kernel never gave the dead worker's descriptor number to a new socket")
            return
        }
        defer { opened.forEach { close($0) } }
        let answer = Mutex<Prediction?>(nil)
        Thread.detachNewThread {
            connection.send(Array("{\"secret\": \"another client's row\"}".utf8), timeout: .seconds(5)) { prediction in
                answer.withLock { $0 = prediction }
            }
        }
        // Whatever the send did, it did it within a second; a frame on the stranger's socket shows at once.
        var readable = pollfd(fd: peer, events: Int16(POLLIN), revents: 0)
        let ready = poll(&readable, 1, 1000)
        var buffer = [UInt8](repeating: 0, count: 4096)
        let received = ready > 0 ? buffer.withUnsafeMutableBytes { recv(peer, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) } : 0
        #expect(received <= 0, "\(received) bytes meant for the dead worker reached the socket that took its number")
        try await eventually("the row is answered") { answer.withLock { $0 } != nil }
        guard case .failure(let failure) = answer.withLock({ $0 }) else {
            Issue.record("a dead worker answered")
            return
        }
        #expect(failure.kind == .unavailable)
    }

    /// Polls until `condition` holds, or fails after `timeout`.
    func eventually(_ what: String, timeout: Duration = .seconds(60), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("timed out waiting until \(what)")
    }
}
