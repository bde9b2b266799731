import Foundation

/// Runs a command to completion off the caller's thread, with its output captured and a time limit.
public enum ProcessRunner {
    public struct Outcome: Sendable {
        public var exitCode: Int32
        public var output: String
        public var timedOut: Bool
        /// True when a signal ended the process (a kill, the out-of-memory killer, a crash), not its own exit.
        public var signalled = false

        public var succeeded: Bool { exitCode == 0 && !timedOut && !signalled }
    }

    /// Where `nice` is: builds run under it, so that a compile never takes the cores from the requests.
    static let nice = ["/usr/bin/nice", "/bin/nice"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Runs `executable` with `arguments`; stdout and stderr are merged, as a developer would read them.
    /// `background` lowers its CPU priority (`nice -n 10`; the compiler's own subprocesses inherit it).
    public static func run(
        _ executable: String,
        _ arguments: [String],
        directory: String? = nil,
        timeout: Duration = .seconds(600),
        background: Bool = false
    ) async throws -> Outcome {
        if background, let nice {
            return try await run(nice, ["-n", "10", executable] + arguments, directory: directory, timeout: timeout)
        }
        let logURL = FileManager.default.temporaryDirectory.appendingPathComponent("autoserve-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: logURL) }
        let log = try FileHandle(forWritingTo: logURL)
        defer { try? log.close() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        let finished = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in finished.continuation.finish() }
        try process.run()
        let timedOut = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await _ in finished.stream {}
                return false
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return !Task.isCancelled
            }
            let first = await group.next()!
            // SIGKILL: a child inherits a signal mask that blocks SIGTERM from the thread that spawned it.
            if first { kill(process.processIdentifier, SIGKILL) }
            group.cancelAll()
            if first { await group.waitForAll() }
            return first
        }
        process.waitUntilExit()
        let output = (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
        return Outcome(
            exitCode: process.terminationStatus, output: output, timedOut: timedOut, signalled: process.terminationReason == .uncaughtSignal
        )
    }
}
