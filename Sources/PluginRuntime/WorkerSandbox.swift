import CSystemShims

#if canImport(Glibc)
    import Glibc
#endif

/// How a model's worker is confined (docs/operations.md, "The sandbox"): `MODEL_SANDBOX` and what the operator granted the model.
public struct SandboxPolicy: Sendable, Hashable {
    /// `MODEL_SANDBOX`: `strict` applies every layer the kernel offers, `required` refuses to run without all of
    /// them, `off` applies none.
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        case strict, required, off
    }

    public var mode: Mode
    /// The worker's private temporary folder (its `TMPDIR`), the one place it may write.
    public var temporaryFolder: String?
    /// Paths beyond the defaults the model may read, granted by `SANDBOX_ALLOW` (`Model:read=/path`).
    public var readable: [String] = []
    /// TCP connect and bind, granted by `SANDBOX_ALLOW` (`Model:network`).
    public var network = false
    /// The largest file the worker may write (`RLIMIT_FSIZE`): its temporary folder holds no file larger.
    public var fileSizeLimit = 256 << 20

    public init(mode: Mode, temporaryFolder: String? = nil, readable: [String] = [], network: Bool = false) {
        self.mode = mode
        self.temporaryFolder = temporaryFolder
        self.readable = readable
        self.network = network
    }

    /// The worker's command-line flags for this policy.
    public var arguments: [String] {
        var arguments = ["--sandbox", mode.rawValue]
        if let temporaryFolder { arguments += ["--tmp", temporaryFolder] }
        for path in readable { arguments += ["--read", path] }
        if network { arguments += ["--network", "allow"] }
        return arguments
    }

    /// The policy the worker's flags describe (`arguments`); `nil` when `--sandbox` names no mode.
    public init?(options: [String: [String]]) {
        guard let mode = Mode(rawValue: options["--sandbox"]?.last ?? Mode.strict.rawValue) else { return nil }
        self.init(mode: mode, temporaryFolder: options["--tmp"]?.last, readable: options["--read"] ?? [], network: options["--network"]?.last == "allow")
    }
}

/// The layers this kernel offers a worker, probed once: what the server logs at start and `required` demands.
public struct SandboxSupport: Sendable, Hashable {
    /// Landlock's ABI (0: none). 1 confines files, 4 TCP, 6 signals and abstract Unix sockets.
    public var landlockABI: Int
    public var seccomp: Bool

    public static let current = SandboxSupport(landlockABI: Int(autoserve_landlock_abi()), seccomp: autoserve_seccomp_available() == 1)

    public init(landlockABI: Int, seccomp: Bool) {
        self.landlockABI = landlockABI
        self.seccomp = seccomp
    }

    /// Each layer `MODEL_SANDBOX=strict` would go without here, with what brings it: empty when all are offered.
    public var missing: [String] {
        var missing: [String] = []
        if landlockABI < 1 {
            missing.append("Landlock (files; Linux 5.13 with landlock in the lsm= boot list, and a seccomp profile that allows landlock_* calls)")
        }
        if (1..<4).contains(landlockABI) { missing.append("Landlock ABI 4 (TCP; Linux 6.7)") }
        if (1..<6).contains(landlockABI) { missing.append("Landlock ABI 6 (signals and abstract Unix sockets; Linux 6.12)") }
        if !seccomp { missing.append("seccomp (a kernel built with CONFIG_SECCOMP_FILTER)") }
        return missing
    }
}

/// Confines the worker process: applied by `WorkerMain` after the model's libraries are loaded and before the
/// model's `init(path:)` runs, while the process has one thread (Landlock confines the calling thread and the
/// threads it starts later).
public enum WorkerSandbox {
    /// Files every worker may read beside its libraries and its model's folder: time zones (`TimeZone.current`),
    /// the loader's cache and the system libraries a `dlopen` of the Swift runtime's own may need, and the devices
    /// a runtime reads (randomness) or writes away (`/dev/null`).
    static let systemReadable = ["/etc/localtime", "/usr/share/zoneinfo", "/etc/ld.so.cache", "/dev/urandom", "/dev/random", "/dev/zero"]

    /// Applies `policy`: the layers applied ("landlock 7", "seccomp", "limits"), or `["off"]`. Throws when a layer
    /// fails to apply, or is missing under `required`.
    public static func apply(_ policy: SandboxPolicy, folder: String) throws(PluginLoadError) -> [String] {
        guard policy.mode != .off else { return ["off"] }
        let support = SandboxSupport.current
        if policy.mode == .required, let missing = support.missing.first {
            throw PluginLoadError("MODEL_SANDBOX=required, and this kernel offers no \(missing); run where it does, or set MODEL_SANDBOX=strict")
        }
        let threads = countThreads()
        guard threads <= 1 else {
            throw PluginLoadError("the worker had \(threads) threads when its sandbox was applied; Landlock would confine only one (report this)")
        }
        var readable = loadedFiles() + systemReadable + [folder] + policy.readable
        // The Swift runtime's folder whole: a model's use of another runtime library loads it later.
        if let runtime = readable.first(where: { $0.hasSuffix("/libswiftCore.so") }) { readable.append(String(runtime.dropLast("/libswiftCore.so".count))) }
        return try confine(
            read: readable, required: [folder] + policy.readable, write: ["/dev/null"] + (policy.temporaryFolder.map { [$0] } ?? []),
            network: policy.network, programs: false, fileSizeLimit: policy.fileSizeLimit, support: support)
    }

    /// Confines this process and what it runs later: Landlock (read and map `read`, write `write`, TCP only with
    /// `network`, signals and abstract Unix sockets scoped), the limits, and the seccomp filter (new sockets only with
    /// `network`, programs and processes only with `programs`). A path of `read` that does not exist is left out
    /// unless it is in `required`. The layers applied.
    public static func confine(
        read: [String], required: [String] = [], write: [String], network: Bool, programs: Bool, fileSizeLimit: Int, support: SandboxSupport = .current
    ) throws(PluginLoadError) -> [String] {
        var layers: [String] = []
        if support.landlockABI >= 1 {
            let abi = Int32(support.landlockABI)
            let ruleset = autoserve_landlock_ruleset(abi, network ? 1 : 0)
            guard ruleset >= 0 else { throw PluginLoadError("the Landlock ruleset could not be made: \(String(cString: strerror(errno)))") }
            for (paths, writable) in [(read, Int32(0)), (write, Int32(1))] {
                for path in paths {
                    let error = autoserve_landlock_allow(ruleset, abi, path, writable)
                    // A default that this system lacks (no zoneinfo) is no error; a path the operator granted is.
                    guard error == 0 || (error == ENOENT && writable == 0 && !required.contains(path)) else {
                        close(ruleset)
                        throw PluginLoadError("the sandbox cannot allow \(writable == 0 ? "reading" : "writing") \(path): \(String(cString: strerror(error)))")
                    }
                }
            }
            let enforced = autoserve_landlock_enforce(ruleset)
            guard enforced == 0 else { throw PluginLoadError("the Landlock ruleset could not be enforced: \(String(cString: strerror(enforced)))") }
            layers.append("landlock \(support.landlockABI)")
        }
        let limited = autoserve_confine_limits(Int64(fileSizeLimit))
        guard limited == 0 else { throw PluginLoadError("the resource limits could not be set: \(String(cString: strerror(limited)))") }
        layers.append("limits")
        if support.seccomp {
            let allow = (network ? Int32(AUTOSERVE_SECCOMP_ALLOW_SOCKETS) : 0) | (programs ? Int32(AUTOSERVE_SECCOMP_ALLOW_PROGRAMS) : 0)
            let confined = autoserve_seccomp_confine(allow)
            guard confined == 0 else { throw PluginLoadError("the seccomp filter could not be installed: \(String(cString: strerror(confined)))") }
            layers.append("seccomp")
        }
        return layers
    }

    /// The files mapped into this process (the worker binary, the plugin, the SDK, the Swift runtime and the system
    /// libraries they loaded), from /proc/self/maps.
    static func loadedFiles() -> [String] {
        guard let maps = fopen("/proc/self/maps", "r") else { return [] }
        defer { fclose(maps) }
        var files: Set<String> = []
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), maps) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard let slash = text.firstIndex(of: "/") else { continue }
            var path = String(text[slash...])
            if path.hasSuffix("\n") { path.removeLast() }
            // A file replaced since it was mapped ("… (deleted)") has no path left to allow.
            guard !path.hasSuffix(" (deleted)") else { continue }
            files.insert(path)
        }
        return files.sorted()
    }

    static func countThreads() -> Int {
        guard let directory = opendir("/proc/self/task") else { return 1 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            // 46 is ".": the entries "." and "..".
            if entry.pointee.d_name.0 != 46 { count += 1 }
        }
        return count
    }
}

/// What the operator grants one model beyond its sandbox (`SANDBOX_ALLOW`, docs/operations.md, "The sandbox"): a model
/// gets what its model.yaml asks for (`sandbox:`) only when it is granted here.
public struct SandboxGrant: Sendable, Hashable {
    public var network = false
    /// Folders the model may read (and the files beneath them).
    public var read: [String] = []

    public init(network: Bool = false, read: [String] = []) {
        self.network = network
        self.read = read
    }

    /// Whether `path` is a granted folder or lies beneath one.
    public func allowsReading(_ path: String) -> Bool {
        read.contains { path == $0 || path.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }
    }

    /// `SANDBOX_ALLOW`: comma-separated `Model:network` and `Model:read=/absolute/path`; the grants of each model.
    /// Throws a message naming the entry that is neither.
    public static func parse(_ value: String) throws(PluginLoadError) -> [String: SandboxGrant] {
        var grants: [String: SandboxGrant] = [:]
        for entry in value.split(separator: ",").map(\.trimmingSpaces) where !entry.isEmpty {
            let parts = entry.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw PluginLoadError("'\(entry)' is not Model:network or Model:read=/path")
            }
            let (model, what) = (parts[0], parts[1])
            if what == "network" {
                grants[model, default: SandboxGrant()].network = true
            } else if what.hasPrefix("read="), what.dropFirst(5).hasPrefix("/"), !what.split(separator: "/").contains("..") {
                grants[model, default: SandboxGrant()].read.append(String(what.dropFirst(5)))
            } else {
                throw PluginLoadError("'\(entry)' is not Model:network or Model:read=/absolute/path")
            }
        }
        return grants
    }
}

extension Substring {
    /// The text without the spaces around it (the worker's module stays off Foundation).
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
