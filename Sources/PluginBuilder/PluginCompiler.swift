import Crypto
import Foundation
public import Logging
public import ServingCore
import Synchronization

/// A model compiled into a shared library, ready for the loader.
public struct BuiltPlugin: Sendable {
    public var definition: ModelDefinition
    public var libraryPath: String
    /// swiftc's output for this build (warnings included); empty when it came from the cache.
    public var log: String
    public var fromCache: Bool
    public var duration: Duration
}

/// The compiled SDK that every plugin links against.
public struct SDKBuild: Sendable {
    public var directory: String
}

/// Compiles models into plugins with swiftc: the SDK once per toolchain, then one shared library per model
/// version, each cached under `CACHE_DIR` (`STATE_DIR/cache` unless set) so that an unchanged version is never
/// compiled twice, by this replica or by any other that shares the folder (``BuildCache``).
///
/// File and module names are unique per (version, toolchain, ABI, SDK): a reused path would make `dlopen`
/// return the code already loaded from it.
public struct PluginCompiler: Sendable {
    public let toolchain: Toolchain
    /// Seals the cache's entries and checks them before a load.
    public let cacheKey: CacheKey
    /// When set, swiftc runs confined through `autoserve confine` (docs/operations.md, "The sandbox").
    public var confinement: CompilerConfinement?
    public let cacheDirectory: String
    public let buildDirectory: String
    public let buildTimeout: Duration
    /// How long a build waits for another process that builds the same entry before it builds on its own.
    public var lockTimeout: Duration
    public var logger: Logger

    /// How the SDK is compiled: as one module (`-wmo`, as SwiftPM's release builds do), so that the decoder's
    /// accesses and generic calls are optimized across its files.
    static let sdkFlags = ["-emit-library", "-emit-module", "-parse-as-library", "-O", "-wmo", "-module-name", "AutoServeModel", "-swift-version", "6"]
    /// The SDK's code generation runs on every core (as SwiftPM's release builds do; the answers are the same): no
    /// plugin builds until the SDK is there, and it is most of a first start.
    static let sdkThreads = ["-num-threads", "\(max(1, ProcessInfo.processInfo.activeProcessorCount))"]

    /// A hash of the embedded SDK's sources and of how they are compiled.
    public static let sdkHash: String = {
        var hasher = SHA256()
        hasher.update(data: Data(sdkFlags.joined(separator: " ").utf8))
        for name in EmbeddedSDK.files.keys.sorted() {
            hasher.update(data: Data(name.utf8))
            hasher.update(data: Data(EmbeddedSDK.files[name]!.utf8))
        }
        return hasher.finalize().prefix(6).map { String(format: "%02x", $0) }.joined()
    }()

    /// A compiler whose cache is `cacheDirectory` (default: `STATE_DIR/cache`), which several processes may share,
    /// and whose work folders are under `stateDirectory`, which is this process's own. `cacheKey` seals and checks
    /// the cache's entries; without one, the key of `STATE_DIR/cache.key` (made when missing).
    public init(
        toolchain: Toolchain, stateDirectory: String, cacheDirectory: String? = nil, cacheKey: CacheKey? = nil, buildTimeout: Duration = .seconds(600),
        logger: Logger = Logger(label: "autoserve")
    ) {
        self.toolchain = toolchain
        // A state folder that cannot hold a key gets one for this process alone: its builds are rebuilt next time.
        self.cacheKey = cacheKey ?? (try? CacheKey.generated(in: stateDirectory)) ?? CacheKey.ephemeral()
        let cache = cacheDirectory ?? (stateDirectory as NSString).appendingPathComponent("cache")
        self.cacheDirectory = (cache as NSString).appendingPathComponent(toolchain.identity)
        self.buildDirectory = (stateDirectory as NSString).appendingPathComponent("build")
        self.buildTimeout = buildTimeout
        self.lockTimeout = buildTimeout
        self.logger = logger
    }

    /// Removes what killed builds left behind a day ago or more.
    public func sweep() {
        BuildCache.sweep(cacheDirectory, olderThan: .seconds(24 * 3600))
        BuildCache.sweep(pluginDirectory, olderThan: .seconds(24 * 3600))
    }

    /// What the module names are derived from: changes with the compiler, the SDK and the ABI.
    public var buildIdentity: String { "\(toolchain.identity)-\(Self.sdkHash)" }

    var sdkDirectory: String { (cacheDirectory as NSString).appendingPathComponent("sdk-\(Self.sdkHash)") }

    /// Whether the cache holds this toolchain's compiled SDK (else the first build compiles it, most of a first start).
    public var sdkIsCached: Bool {
        FileManager.default.fileExists(atPath: (sdkDirectory as NSString).appendingPathComponent("libAutoServeModel.so"))
    }
    var pluginDirectory: String { (cacheDirectory as NSString).appendingPathComponent("plugins") }

    /// Compiles the SDK into `libAutoServeModel.so` and its module, unless the cache has it.
    public func prepareSDK() async throws(ModelBuildError) -> SDKBuild {
        let manager = FileManager.default
        let library = (sdkDirectory as NSString).appendingPathComponent("libAutoServeModel.so")
        // Every model's build asks for the SDK: its seal is checked once per process, not once per model.
        if Self.soundSDKs.withLock({ $0.contains(sdkDirectory) }) { return SDKBuild(directory: sdkDirectory) }
        if BuildCache.check(library, identity: buildIdentity, key: cacheKey) == .sound {
            Self.soundSDKs.withLock { _ = $0.insert(sdkDirectory) }
            return SDKBuild(directory: sdkDirectory)
        }
        do {
            try manager.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        } catch {
            throw ModelBuildError(Diagnostic(message: "cannot create the build cache \(cacheDirectory): \(error); check CACHE_DIR"))
        }
        let lockPath = "\(sdkDirectory).lock"
        let lock = await takeLock(lockPath, for: "the model SDK")
        defer { releaseLock(lock, lockPath) }
        switch BuildCache.check(library, identity: buildIdentity, key: cacheKey) {
        case .sound:
            Self.soundSDKs.withLock { _ = $0.insert(sdkDirectory) }
            return SDKBuild(directory: sdkDirectory)
        case .missing: break
        case .damaged(let reason):
            logger.warning("the cached model SDK is damaged; rebuilding it", metadata: ["path": "\(sdkDirectory)", "reason": "\(reason)"])
        }
        let staging = "\(sdkDirectory).staging-\(UUID().uuidString)"
        do {
            try manager.createDirectory(atPath: staging, withIntermediateDirectories: true)
            var sources: [String] = []
            for (name, text) in EmbeddedSDK.files.sorted(by: { $0.key < $1.key }) {
                let path = (staging as NSString).appendingPathComponent(name)
                try text.write(toFile: path, atomically: false, encoding: .utf8)
                sources.append(name)
            }
            let outcome = try await runCompiler(
                Self.sdkFlags + Self.sdkThreads + [
                    "-emit-module-path", "AutoServeModel.swiftmodule", "-Xlinker", "-soname", "-Xlinker", "libAutoServeModel.so",
                    "-o", "libAutoServeModel.so",
                ] + sources, directory: staging, read: [staging], write: [staging])
            guard outcome.succeeded else {
                try? manager.removeItem(atPath: staging)
                throw ModelBuildError(Diagnostic(message: "the model SDK does not compile with \(toolchain.versionLine)"), log: outcome.output)
            }
            let stagedLibrary = (staging as NSString).appendingPathComponent("libAutoServeModel.so")
            try BuildCache.seal(stagedLibrary, as: stagedLibrary, identity: buildIdentity, key: cacheKey)
            if manager.fileExists(atPath: sdkDirectory) {
                // A damaged SDK (or one published without this process's lock) moves aside first: a folder is
                // replaced in one rename only when the name is free.
                try manager.moveItem(atPath: sdkDirectory, toPath: "\(sdkDirectory).damaged-\(UUID().uuidString)")
            }
            try manager.moveItem(atPath: staging, toPath: sdkDirectory)
            Self.soundSDKs.withLock { _ = $0.insert(sdkDirectory) }
        } catch let error as ModelBuildError {
            throw error
        } catch {
            try? manager.removeItem(atPath: staging)
            if BuildCache.check(library, identity: buildIdentity, key: cacheKey) == .sound { return SDKBuild(directory: sdkDirectory) }
            throw ModelBuildError(Diagnostic(message: "cannot build the model SDK in \(sdkDirectory): \(error)"))
        }
        return SDKBuild(directory: sdkDirectory)
    }

    /// Takes the build lock of one cache entry, waiting for another process that builds it; `nil` when this process
    /// builds without it (the other one took too long, or the file system cannot lock), which is logged.
    func takeLock(_ path: String, for what: String) async -> FileLock? {
        var waited = false
        let outcome = await FileLock.acquire(path, timeout: lockTimeout) {
            waited = true
            // The lock may be this process's own: two models' builds both need the model SDK.
            let here = Self.locksHeldHere.withLock { $0.contains(path) }
            logger.info(
                here
                    ? "this process is already building the same entry (for another model); waiting for it"
                    : "another process is building the same entry; waiting for it",
                metadata: ["entry": "\(what)"])
        }
        switch outcome {
        case .acquired(let lock, let duration):
            Self.locksHeldHere.withLock { _ = $0.insert(path) }
            if waited {
                logger.info("the other build ended", metadata: ["entry": "\(what)", "waited_seconds": "\(String(format: "%.2f", duration.seconds))"])
            }
            return lock
        case .timedOut:
            logger.warning(
                "another process has built the same entry for longer than the lock timeout; building it here too",
                metadata: ["entry": "\(what)", "lock": "\(path)", "timeout_seconds": "\(Int(lockTimeout.seconds))"])
            return nil
        case .unsupported(let reason):
            let first = Self.unlockableDirectories.withLock { $0.insert(cacheDirectory).inserted }
            if first {
                logger.warning(
                    "the build cache cannot be locked; each replica builds its own plugins (the cache stays safe, builds are repeated)",
                    metadata: ["cache": "\(cacheDirectory)", "reason": "\(reason)"])
            }
            return nil
        }
    }

    /// Releases a lock `takeLock` took.
    func releaseLock(_ lock: FileLock?, _ path: String) {
        guard let lock else { return }
        Self.locksHeldHere.withLock { _ = $0.remove(path) }
        lock.release()
    }

    /// The build locks this process holds now, to tell its own build from another process's when it waits.
    static let locksHeldHere = Mutex<Set<String>>([])

    /// The SDK folders this process has found sound or built.
    private static let soundSDKs = Mutex<Set<String>>([])

    /// The caches that could not be locked, warned about once per process.
    private static let unlockableDirectories = Mutex<Set<String>>([])

    /// Builds one model, or returns the cached library (or the cached compile failure) of its module.
    ///
    /// Several processes that need the same version at the same moment build it once: the first takes the entry's
    /// lock and builds, the others wait for the lock and find the library it published.
    public func build(_ definition: ModelDefinition, sdk: SDKBuild) async -> Result<BuiltPlugin, ModelBuildError> {
        let clock = ContinuousClock()
        let start = clock.now
        let manager = FileManager.default
        let library = (pluginDirectory as NSString).appendingPathComponent("\(definition.moduleName).so")
        let failure = (pluginDirectory as NSString).appendingPathComponent("\(definition.moduleName).failed")
        func cached() -> Result<BuiltPlugin, ModelBuildError>? {
            if BuildCache.check(library, identity: buildIdentity, key: cacheKey) == .sound {
                return .success(BuiltPlugin(definition: definition, libraryPath: library, log: "", fromCache: true, duration: clock.now - start))
            }
            if let log = manager.contents(atPath: failure) {
                return .failure(Self.compileError(definition, log: String(decoding: log, as: UTF8.self)))
            }
            return nil
        }
        if let known = cached() { return known }
        do {
            try manager.createDirectory(atPath: pluginDirectory, withIntermediateDirectories: true)
        } catch {
            return .failure(
                ModelBuildError(
                    Diagnostic(file: definition.name.rawValue, message: "cannot create the build cache: \(error); check CACHE_DIR"), retryable: true))
        }
        let lockPath = "\((pluginDirectory as NSString).appendingPathComponent(definition.moduleName)).lock"
        let lock = await takeLock(lockPath, for: definition.moduleName)
        defer { releaseLock(lock, lockPath) }
        if let known = cached() { return known }
        if case .damaged(let reason) = BuildCache.check(library, identity: buildIdentity, key: cacheKey) {
            logger.warning(
                "a cached plugin is damaged; rebuilding it",
                metadata: ["model": "\(definition.name)", "path": "\(library)", "reason": "\(reason)"])
        }
        let workDirectory = (buildDirectory as NSString).appendingPathComponent("\(definition.moduleName)-\(UUID().uuidString)")
        defer { try? manager.removeItem(atPath: workDirectory) }
        do {
            try manager.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
            let glue = (workDirectory as NSString).appendingPathComponent("ServeModels+\(definition.name).swift")
            try ServeModelsGenerator.glue(for: definition).write(toFile: glue, atomically: false, encoding: .utf8)
            let staging = (workDirectory as NSString).appendingPathComponent("\(definition.moduleName).so")
            let outcome = try await runCompiler(
                [
                    "-emit-library", "-parse-as-library", "-O", "-module-name", definition.moduleName, "-swift-version", "5",
                    "-I", sdk.directory, "-L", sdk.directory, "-lAutoServeModel", "-Xlinker", "-rpath", "-Xlinker", sdk.directory,
                    "-o", staging,
                ] + definition.sources + [glue], directory: definition.folder, read: [sdk.directory, definition.folder], write: [workDirectory])
            guard outcome.succeeded else {
                var log = outcome.output
                if outcome.timedOut {
                    log += "\nswiftc did not finish within \(buildTimeout); the build was stopped and is retried on the next sync\n"
                } else if outcome.signalled {
                    log += "\nswiftc was killed (signal \(outcome.exitCode)), perhaps out of memory; the build is retried on the next sync\n"
                } else if Self.isCompileError(outcome.output) {
                    // Only the sources' own errors are cached: they fail the same way until the folder changes.
                    try? log.write(toFile: failure, atomically: true, encoding: .utf8)
                } else {
                    log += "\nswiftc exited with status \(outcome.exitCode) without an error of the sources; the build is retried on the next sync\n"
                }
                var error = Self.compileError(definition, log: log)
                error.retryable = !Self.isCompileError(outcome.output) || outcome.timedOut || outcome.signalled
                return .failure(error)
            }
            // The work folder is this process's and may be on another file system than the cache: the library is
            // copied beside its entry first, so that it appears there in one rename.
            let temporary = BuildCache.temporaryName(for: library)
            do {
                try manager.copyItem(atPath: staging, toPath: temporary)
                try BuildCache.publish(temporary, as: library, identity: buildIdentity, key: cacheKey)
            } catch {
                try? manager.removeItem(atPath: temporary)
                throw error
            }
            return .success(BuiltPlugin(definition: definition, libraryPath: library, log: outcome.output, fromCache: false, duration: clock.now - start))
        } catch {
            return .failure(ModelBuildError(Diagnostic(file: definition.name.rawValue, message: "cannot run the build: \(error)"), retryable: true))
        }
    }

    /// Runs swiftc in `directory`, in the background; confined (`confinement`) to reading the toolchain, the system and
    /// `read`, and writing `write` and the shared module cache, with an environment of its own.
    func runCompiler(_ arguments: [String], directory: String, read: [String], write: [String]) async throws -> ProcessRunner.Outcome {
        guard let confinement else {
            return try await ProcessRunner.run(toolchain.swiftc, arguments, directory: directory, timeout: buildTimeout, background: true)
        }
        let moduleCache = (buildDirectory as NSString).appendingPathComponent("module-cache")
        try FileManager.default.createDirectory(atPath: moduleCache, withIntermediateDirectories: true)
        let paths =
            (CompilerConfinement.readable(toolchain: toolchain.swiftc) + read).flatMap { ["--read", $0] }
            + (write + [moduleCache, "/dev/null"]).flatMap { ["--write", $0] }
        var environment = ProcessInfo.processInfo.environment.filter { ["PATH", "HOME", "LANG", "LC_ALL"].contains($0.key) }
        environment["TMPDIR"] = write.first
        return try await ProcessRunner.run(
            confinement.launcher, ["confine"] + paths + ["--", toolchain.swiftc] + arguments + ["-module-cache-path", moduleCache],
            directory: directory, timeout: buildTimeout, background: true, environment: environment)
    }

    /// Whether swiftc's output reports an error in the sources (`file:line:column: error: …`), as opposed to a
    /// compiler that failed for reasons of its own (killed, out of memory, a broken toolchain).
    ///
    /// The driver reports a killed frontend as an error line too (`error: compile command failed due to signal
    /// 9`): that one is the compiler's fate, not the sources'.
    static func isCompileError(_ output: String) -> Bool {
        let lines = output.split(separator: "\n")
        let killed = lines.contains { $0.contains("due to signal") || $0.contains("unable to execute command") }
        return !killed && lines.contains { $0.contains(": error: ") }
    }

    /// The first compiler error, located in the model's folder, with the whole log attached.
    static func compileError(_ definition: ModelDefinition, log: String) -> ModelBuildError {
        for line in log.split(separator: "\n") where line.contains(": error: ") {
            let parts = line.split(separator: ":", maxSplits: 4, omittingEmptySubsequences: false)
            if parts.count == 5, let lineNumber = Int(parts[1]) {
                let file = URL(fileURLWithPath: String(parts[0])).lastPathComponent
                let message = parts[4].trimmingCharacters(in: .whitespaces)
                let located = file.hasPrefix("ServeModels+") ? "ServeModels.swift (generated glue for \(definition.name))" : "\(definition.name)/\(file)"
                return ModelBuildError(Diagnostic(file: located, line: lineNumber, message: "compile error: \(message)"), log: log)
            }
            return ModelBuildError(Diagnostic(file: definition.name.rawValue, message: "compile error: \(line)"), log: log)
        }
        return ModelBuildError(Diagnostic(file: definition.name.rawValue, message: "swiftc failed without an error line; see the build log"), log: log)
    }
}

/// How the server runs the compiler confined (docs/operations.md, "The sandbox"): `launcher confine --read … --write …
/// -- swiftc …`, where the launcher is the `autoserve` binary.
public struct CompilerConfinement: Sendable {
    public var launcher: String

    public init(launcher: String) {
        self.launcher = launcher
    }

    /// What every compile reads: the toolchain's folder (`…/usr` of the real swiftc), the system's headers and
    /// libraries, the loader's cache, randomness, and /proc and the CPU list, which the driver reads of itself.
    static func readable(toolchain swiftc: String) -> [String] {
        let real = URL(fileURLWithPath: swiftc).resolvingSymlinksInPath().path
        let root = ((real as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
        return [root, "/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/dev/urandom", "/proc", "/sys/devices/system/cpu"]
    }
}
