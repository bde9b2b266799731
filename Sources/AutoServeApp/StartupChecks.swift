import Foundation
import Logging
import ModelSource
import NIOCore
import PluginRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// What the server checks before it serves, so that a setting it cannot use stops it at once with the fix
/// (exit 78) instead of a server that answers `/healthz` while every model fails.
enum StartupChecks {
    /// `SHUTDOWN_DELAY` is part of the stop `SHUTDOWN_TIMEOUT` bounds: it must leave time to answer what is in flight.
    static func stopTimes(delay: Duration, timeout: Duration) throws(ConfigurationError) {
        guard delay < timeout else {
            throw ConfigurationError(
                "SHUTDOWN_DELAY (\(delay.seconds) s) must be shorter than SHUTDOWN_TIMEOUT (\(timeout.seconds) s), which bounds the whole stop; "
                    + "lower the delay or raise the timeout"
            )
        }
    }

    /// Logs the sandbox layers this kernel and container runtime allow a worker (docs/operations.md, "The sandbox"): a missing
    /// layer is a warning under `MODEL_SANDBOX=strict`, and stops the server under `required`.
    static func sandbox(_ configuration: ServerConfiguration, support: SandboxSupport, logger: Logger) throws(ConfigurationError) {
        let mode = configuration.modelSandbox
        if configuration.modelIsolation == .inprocess {
            guard mode != .required else {
                throw ConfigurationError(
                    "MODEL_SANDBOX=required cannot confine models under MODEL_ISOLATION=inprocess, which loads them into the server itself; "
                        + "set MODEL_ISOLATION=process (the default)")
            }
            logger.warning(
                Logger.Message(
                    stringLiteral: "MODEL_ISOLATION=inprocess: models run inside the server with its whole authority and no sandbox; "
                        + "use process isolation for models you do not fully trust"))
            return
        }
        logger.info("sandbox", metadata: ["mode": "\(mode.rawValue)", "landlock_abi": "\(support.landlockABI)", "seccomp": "\(support.seccomp)"])
        guard mode != .off else {
            logger.warning("MODEL_SANDBOX=off: every model's code runs with the server's authority (its files, network and signals)")
            return
        }
        let missing = support.missing
        guard !missing.isEmpty else { return }
        if mode == .required {
            throw ConfigurationError(
                "MODEL_SANDBOX=required, and workers here cannot have \(missing.joined(separator: "; ")). Run on a kernel that offers them "
                    + "(Linux 6.12 or later) under a seccomp profile that allows the landlock_* calls, or set MODEL_SANDBOX=strict"
            )
        }
        logger.warning("sandbox layers missing; workers run with the others", metadata: ["missing": "\(missing.joined(separator: "; "))"])
    }

    /// `MODELS_REPO_ALLOWED_SIGNERS` must name a file of signers, and applies to a repository only (docs/git-sync.md,
    /// "Signed commits"); the file is read again at each sync, so that a new signer needs no restart.
    static func allowedSigners(_ configuration: ServerConfiguration, logger: Logger) throws(ConfigurationError) {
        guard let path = configuration.modelsRepoAllowedSigners else { return }
        guard configuration.modelsRepo != nil else {
            throw ConfigurationError(
                "MODELS_REPO_ALLOWED_SIGNERS is set without MODELS_REPO: it checks the commits of a repository; set MODELS_REPO or unset it")
        }
        do {
            let signers = try AllowedSigners.load(path)
            logger.info("signed commits only", metadata: ["allowed_signers": "\(path)", "keys": "\(signers.signers.count)"])
        } catch {
            throw ConfigurationError(error.message)
        }
    }

    /// Creates `path` if needed and writes a file into it; otherwise names the folder, the user and the fix. The
    /// file's name is its own (servers that share the folder, replicas or a test's servers in one process, may check
    /// it at the same moment: one must not remove another's).
    static func writableFolder(_ path: String, setting: String) throws(ConfigurationError) {
        let probe = (path as NSString).appendingPathComponent(".autoserve-write-check-\(getpid())-\(UUID().uuidString)")
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try Data().write(to: URL(fileURLWithPath: probe))
            try FileManager.default.removeItem(atPath: probe)
        } catch {
            let user = currentUser
            throw ConfigurationError(
                "\(setting)=\(path) cannot be written by \(user.description): \(Self.reason(error)). "
                    + "Give the folder to that user (chown \(user.uid):\(user.gid) \(path)), mount a named volume there "
                    + "(docker run -v autoserve-state:\(path)), or set \(setting) to a folder it can write"
            )
        }
    }

    /// The message of a listening socket the system refused: the port, the user and what to do.
    static func listenRefused(_ error: IOError, host: String, port: Int) -> ConfigurationError {
        let user = currentUser
        switch error.errnoCode {
        case EACCES:
            return ConfigurationError(
                "cannot listen on \(host):\(port) as \(user.description): ports below "
                    + "\((try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_unprivileged_port_start", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "1024") "
                    + "need root or CAP_NET_BIND_SERVICE. Set PORT=8080 (the image's default) and publish it as the port you want "
                    + "(docker run -p 80:8080)"
            )
        case EADDRINUSE:
            return ConfigurationError("cannot listen on \(host):\(port): another process listens there; stop it or set PORT to a free port")
        default:
            return ConfigurationError("cannot listen on \(host):\(port): \(error); set HOST to an address of this machine (0.0.0.0 for all)")
        }
    }

    /// The descriptors this process may open, after raising the soft limit to the hard one (as daemons do).
    static func descriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(min(limit.rlim_cur, 1 << 30))
    }

    /// `MAX_CONNECTIONS` by default: the descriptor limit less a reserve for workers (three descriptors each),
    /// git, builds and the plugin files, a quarter of the limit and at least 512; never below 64.
    static func defaultMaxConnections(descriptors: Int) -> Int {
        max(64, descriptors - max(512, descriptors / 4))
    }

    /// The user the server runs as, for messages: `uid 10001 (autoserve)`.
    static var currentUser: (uid: uid_t, gid: gid_t, description: String) {
        let uid = getuid()
        let name = getpwuid(uid).flatMap { $0.pointee.pw_name.map { String(cString: $0) } }
        return (uid, getgid(), "uid \(uid)" + (name.map { " (\($0))" } ?? ""))
    }

    static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if nsError.domain == NSCocoaErrorDomain, [NSFileWriteNoPermissionError, 513].contains(nsError.code) { return "permission denied" }
        return nsError.localizedDescription
    }
}
