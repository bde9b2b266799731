import Crypto
import Foundation
import Synchronization

/// The Swift compiler plugins are built with, and the identity that keys the build cache.
public struct Toolchain: Sendable {
    public var swiftc: String
    /// `swiftc -version`'s first line, e.g. `Swift version 6.3.1 (swift-6.3.1-RELEASE)`.
    public var versionLine: String
    /// A short hash of the compiler's path and version: cached plugins are reused only with the same one.
    public var identity: String

    /// Finds the compiler: `SWIFTC` if set, else `swiftc` on PATH, else the one beside the Swift runtime
    /// this server runs on (the toolchain that built it).
    public static func locate(configured: String?) async throws(ToolchainError) -> Toolchain {
        // Asked once per compiler and process: a `swiftc -version` is a process start each time.
        if let known = located.withLock({ $0[configured ?? ""] }) { return known }
        let toolchain = try await find(configured: configured)
        located.withLock { $0[configured ?? ""] = toolchain }
        return toolchain
    }

    /// The compilers found so far in this process, by the `SWIFTC` they were found for.
    private static let located = Mutex<[String: Toolchain]>([:])

    static func find(configured: String?) async throws(ToolchainError) -> Toolchain {
        let candidates: [String]
        if let configured, !configured.isEmpty {
            candidates = [configured]
        } else {
            candidates = searchPath() + [runtimeSibling()].compactMap { $0 }
        }
        guard let swiftc = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            if let configured, !configured.isEmpty {
                throw ToolchainError("SWIFTC=\(configured) is not an executable file; point SWIFTC at a swiftc binary or unset it")
            }
            throw ToolchainError("no swiftc found on PATH or beside the Swift runtime; install a Swift toolchain or set SWIFTC")
        }
        let outcome: ProcessRunner.Outcome
        do {
            outcome = try await ProcessRunner.run(swiftc, ["-version"], timeout: .seconds(60))
        } catch {
            throw ToolchainError("cannot run \(swiftc) -version: \(error)")
        }
        guard outcome.succeeded else {
            throw ToolchainError("\(swiftc) -version failed (exit \(outcome.exitCode)): \(outcome.output.prefix(500))")
        }
        let versionLine =
            outcome.output.split(separator: "\n").first { $0.contains("Swift version") }.map(String.init)
            ?? outcome.output.split(separator: "\n").first.map(String.init) ?? "unknown"
        let digest = SHA256.hash(data: Data("\(swiftc)\n\(outcome.output)".utf8))
        return Toolchain(swiftc: swiftc, versionLine: versionLine, identity: digest.prefix(6).map { String(format: "%02x", $0) }.joined())
    }

    static func searchPath() -> [String] {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/swiftc" }
    }

    /// `…/usr/bin/swiftc` for a runtime loaded from `…/usr/lib/swift/linux/libswiftCore.so`, read from the
    /// process's own memory map.
    static func runtimeSibling() -> String? {
        guard let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8),
            let line = maps.split(separator: "\n").first(where: { $0.hasSuffix("/libswiftCore.so") }),
            let start = line.firstIndex(of: "/")
        else { return nil }
        var url = URL(fileURLWithPath: String(line[start...])).resolvingSymlinksInPath()
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("bin/swiftc").path
    }
}

/// No usable compiler: nothing can be built until the operator fixes it.
public struct ToolchainError: Error, Sendable, CustomStringConvertible {
    public var message: String

    init(_ message: String) { self.message = message }

    public var description: String { message }
}
