import AutoServeApp
import Foundation
import Logging
import PluginBuilder
import ServiceLifecycle
import ServingCore
import Synchronization

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Rows the tests send.
enum Rows {
    /// An Iris row the model classifies as setosa.
    static let setosa = #"{"variables": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}"#
}

/// Paths of the repository and its fixtures, found from this file.
enum Paths {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let modelsServe = "\(repository)/models_serve"
    static let fixtures = "\(repository)/Tests/Fixtures"
    /// The plugin cache shared by every test of this process, so the SDK and each model version build once.
    static let sharedState = "\(NSTemporaryDirectory())autoserve-tests-\(getpid())/state"
    /// The key file of the shared state's cache (`STATE_DIR/cache.key`), made if no server made it yet: a server with
    /// a state folder of its own that shares the suite's cache is given it as `CACHE_KEY_FILE`, as a fleet's replicas
    /// share one `CACHE_KEY`; with a key of its own it would rebuild every entry.
    static var sharedCacheKeyFile: String {
        get throws {
            _ = try CacheKey.generated(in: sharedState)
            return "\(sharedState)/cache.key"
        }
    }

    /// The `autoserve` binary built beside this test bundle.
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("autoserve").path
    }

    /// The `autoserve-worker` binary built beside it.
    static var workerBinary: String {
        URL(fileURLWithPath: binary).deletingLastPathComponent().appendingPathComponent("autoserve-worker").path
    }

    static func temporaryFolder(_ label: String) throws -> String {
        let path = "\(NSTemporaryDirectory())autoserve-\(label)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The workers' temporary folders (`autoserve-worker-XXXXXX`) in `folder`, a server's `TMPDIR`.
    static func workerFolders(in folder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("autoserve-worker-") }.sorted()
    }

    /// A models folder holding copies of the given model folders (name → source folder).
    static func modelsFolder(_ models: [String: String]) throws -> String {
        let folder = try temporaryFolder("models")
        for (name, source) in models {
            try FileManager.default.copyItem(atPath: source, toPath: "\(folder)/\(name)")
        }
        return folder
    }
}

/// One answer of the server, as a client sees it.
struct HTTPAnswer: Sendable {
    var status: Int
    var headers: [String: String]
    var body: Data

    var text: String { String(decoding: body, as: UTF8.self) }
    var json: JSONValue? { try? JSONParser.parse(Array(body)) }

    func header(_ name: String) -> String? {
        headers.first { $0.key.lowercased() == name.lowercased() }?.value
    }

    /// The `error` object's field, for error bodies.
    func error(_ field: String) -> JSONValue? { json?["error"]?[field] }
}

/// A client over URLSession (libcurl on Linux): a real HTTP client on a real socket.
struct HTTPClient: Sendable {
    let base: String

    func send(_ method: String, _ path: String, body: String? = nil, data: Data? = nil, headers: [String: String] = [:]) async throws -> HTTPAnswer {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        request.timeoutInterval = 120
        if let body { request.httpBody = Data(body.utf8) }
        if let data { request.httpBody = data }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (bytes, response) = try await Self.bounded(request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (key, value) in http.allHeaderFields { fields["\(key)"] = "\(value)" }
        return HTTPAnswer(status: http.statusCode, headers: fields, body: bytes)
    }

    /// URLSession's answer, or a failure after 150 s: a request that libcurl never completes fails its test
    /// instead of holding the whole run (a task group would wait for it).
    static func bounded(_ request: URLRequest) async throws -> (Data, URLResponse) {
        final class Waiting: Sendable {
            let continuation = Mutex<CheckedContinuation<(Data, URLResponse), any Error>?>(nil)
        }
        let waiting = Waiting()
        return try await withCheckedThrowingContinuation { continuation in
            waiting.continuation.withLock { $0 = continuation }
            let transfer = Task {
                do {
                    let answer = try await URLSession.shared.data(for: request)
                    waiting.continuation.withLock { $0.take() }?.resume(returning: answer)
                } catch {
                    waiting.continuation.withLock { $0.take() }?.resume(throwing: error)
                }
            }
            Task {
                try? await Task.sleep(for: .seconds(150))
                guard let late = waiting.continuation.withLock({ $0.take() }) else { return }
                transfer.cancel()
                late.resume(throwing: TestFailure("no answer to \(request.url!) within 150 s"))
            }
        }
    }

    func get(_ path: String) async throws -> HTTPAnswer { try await send("GET", path) }

    /// Polls the index until a sync has finished with success and no model has a version under way: every model
    /// of the source brought up or failed (a sync only records the versions; each model comes up on its own).
    func waitForTheFirstSync(index: String = "/", timeout: Duration = .seconds(300)) async throws {
        try await eventually("the first sync finished and every model came up or failed", timeout: timeout) {
            guard let document = (try? await get(index))?.json, document["_server"]?["last_sync"]?["result"] == .string("success") else { return false }
            return Self.settled(document)
        }
    }

    /// Whether no model of an index document has a version under way (`pending` is null for each).
    static func settled(_ index: JSONValue) -> Bool {
        guard case .object(let members) = index else { return false }
        return members.allSatisfy { name, model in name == "_server" || model["pending"] == .null }
    }

    func post(_ path: String, _ body: String) async throws -> HTTPAnswer { try await send("POST", path, body: body) }
}

/// The real server, assembled as `autoserve serve` assembles it, on an ephemeral port of 127.0.0.1.
final class TestServer: Sendable {
    let server: AutoServeServer
    let group: ServiceGroup
    let task: Task<Void, any Error>
    let client: HTTPClient
    let port: Int
    let modelsDirectory: String

    init(server: AutoServeServer, group: ServiceGroup, task: Task<Void, any Error>, port: Int, modelsDirectory: String) {
        self.server = server
        self.group = group
        self.task = task
        self.port = port
        self.client = HTTPClient(base: "http://127.0.0.1:\(port)")
        self.modelsDirectory = modelsDirectory
    }

    static func start(
        models: [String: String],
        waitUntilReady: Bool = true,
        configure: (inout ServerConfiguration) throws -> Void = { _ in }
    ) async throws -> TestServer {
        let directory = try Paths.modelsFolder(models)
        var configuration = ServerConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.modelsDir = directory
        configuration.stateDir = Paths.sharedState
        configuration.workerExecutable = Paths.workerBinary
        configuration.helperExecutable = Paths.binary
        try configure(&configuration)
        var logger = Logger(label: "autoserve-test")
        logger.logLevel = .warning
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let server = try await AutoServeServer.build(configuration: configuration, logger: logger) { port in continuation.yield(port) }
        let group = ServiceGroup(configuration: .init(services: [server.application], gracefulShutdownSignals: [], logger: logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestFailure("the server did not start listening") }
        let test = TestServer(server: server, group: group, task: task, port: port, modelsDirectory: directory)
        if waitUntilReady { try await test.waitUntilReady() }
        return test
    }

    /// Polls the index until the first sync has finished, every model brought up or failed.
    func waitUntilReady(timeout: Duration = .seconds(300)) async throws {
        try await client.waitForTheFirstSync(index: server.configuration.baseUrl.isEmpty ? "/" : "/\(server.configuration.baseUrl)/", timeout: timeout)
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) { self.description = description }
}

/// The `autoserve` binary started as users start it (`serve` on an ephemeral port of 127.0.0.1), with
/// everything it prints captured.
final class BinaryServer: @unchecked Sendable {
    let process = Process()
    let output = Pipe()
    private(set) var logs = ""

    /// `environment` is added to this process's, less the names in `removing`; `directory` is the working
    /// directory; `launcher` runs before the binary (`setpriv …` to drop privileges).
    init(environment extra: [String: String], removing: [String] = [], directory: String? = nil, launcher: [String] = []) throws {
        if let first = launcher.first {
            process.executableURL = URL(fileURLWithPath: first)
            process.arguments = Array(launcher.dropFirst()) + [Paths.binary, "serve"]
        } else {
            process.executableURL = URL(fileURLWithPath: Paths.binary)
            process.arguments = ["serve"]
        }
        var environment = ProcessInfo.processInfo.environment
        for name in removing { environment[name] = nil }
        environment["PORT"] = "0"
        environment["HOST"] = "127.0.0.1"
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.standardOutput = output
        process.standardError = output
        try process.run()
    }

    /// Reads the log until the `listening` line and returns the port it names.
    func waitUntilListening() async throws -> Int {
        var port: Int?
        // A server listens within a second alone; when a suite starts, a dozen servers start beside the compilers of
        // others on two cores, and one CI run saw fourteen of them take more than 60 s.
        try await eventually("the server listens", timeout: .seconds(180)) {
            readWhatIsThere()
            if let line = logs.range(of: "msg=listening"), let field = logs[line.upperBound...].range(of: "port=") {
                port = Int(logs[field.upperBound...].prefix { $0.isNumber })
            }
            return port != nil
        }
        return port!
    }

    /// Reads the log until it contains `text` (which it may already hold).
    func waitForLog(_ text: String, timeout: Duration = .seconds(120)) async throws {
        try await eventually("the server logs \(text)", timeout: timeout) {
            readWhatIsThere()
            return logs.contains(text)
        }
    }

    /// Adds what the server has printed so far to `logs`, without waiting for more.
    private func readWhatIsThere() {
        let descriptor = output.fileHandleForReading.fileDescriptor
        let flags = fcntl(descriptor, F_GETFL)
        _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(descriptor, F_SETFL, flags) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            guard count > 0 else { return }
            logs += String(decoding: buffer[..<count], as: UTF8.self)
        }
    }

    /// `stop()` on a thread of its own.
    func stopped() async {
        _ = try? await offThread { self.stop() }
    }

    /// Sends SIGTERM, waits for the exit and collects the rest of the log.
    func stop() {
        process.terminate()
        process.waitUntilExit()
        logs += String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Runs blocking work (a socket read, a wait for a process) on a thread of its own: a test that blocks one of the
/// few threads of Swift's concurrency pool starves whatever else needs them, the in-process servers included.
func offThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

/// Runs `body` against the server `start` makes, and always awaits the server's stop before it returns, whether
/// `body` returns or throws: no test leaves a server running into the next.
func withTestServer<T>(_ start: @autoclosure () async throws -> TestServer, _ body: (TestServer) async throws -> T) async throws -> T {
    let server = try await start()
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

/// Runs `executable` with `input` on its standard input; its exit status and what it printed (both streams).
func runWithInput(_ executable: String, _ arguments: [String], input: Data, directory: String? = nil) throws -> CommandLineTests.Run {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let stdin = Pipe()
    let stdout = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stdout
    try process.run()
    stdin.fileHandleForWriting.write(input)
    try stdin.fileHandleForWriting.close()
    let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return CommandLineTests.Run(status: process.terminationStatus, output: output)
}
