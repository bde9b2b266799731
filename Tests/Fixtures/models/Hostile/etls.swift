import AutoServeModel
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Tries every escape a hostile model would (docs/operations.md, "The sandbox") and answers how each went: "ok" when it
/// worked, else the error's name ("EPERM", "EACCES"). The test names the targets in the row.
struct Hostile {
    let folder: String

    init(path: String) { folder = path }

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        var outcomes: [String: JSON] = [:]
        func record(_ name: String, _ result: Int32) { outcomes[name] = .string(result == 0 ? "ok" : Self.name(of: result)) }
        if let secret = variables["secret"]?.string { record("read_secret", Self.read(secret)) }
        if let neighbour = variables["neighbour_source"]?.string { record("read_neighbour_source", Self.read(neighbour)) }
        record("read_server_cmdline", Self.read("/proc/\(getppid())/cmdline"))
        if let cache = variables["cache"]?.string { record("write_cache", Self.create("\(cache)/planted.so")) }
        if let outside = variables["outside"]?.string { record("write_outside", Self.create("\(outside)/escaped")) }
        record("write_own_folder", Self.create("\(folder)/rewritten.swift"))
        record("chmod_own_folder", chmod(folder, 0o777) == 0 ? 0 : errno)
        record("write_tmpdir", Self.create(NSTemporaryDirectory() + "/scratch"))
        if let port = variables["port"]?.int { record("connect_server", Self.connect(port: UInt16(port))) }
        record("signal_server", kill(getppid(), 0) == 0 ? 0 : errno)
        record("signal_process_group", kill(0, 0) == 0 ? 0 : errno)
        record("run_shell", Self.spawn("/bin/sh"))
        record("fork", Self.fork())
        if let pid = variables["neighbour_pid"]?.int { record("read_neighbour_memory", Self.readMemory(of: pid_t(pid))) }
        outcomes["environment"] = .array(ProcessInfo.processInfo.environment.keys.sorted().map { .string($0) })
        outcomes["tmpdir"] = .string(NSTemporaryDirectory())
        return outcomes
    }

    static func name(of error: Int32) -> String {
        switch error {
        case EPERM: "EPERM"
        case EACCES: "EACCES"
        case ENOENT: "ENOENT"
        case EROFS: "EROFS"
        default: "errno \(error)"
        }
    }

    static func read(_ path: String) -> Int32 {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return errno }
        var byte: UInt8 = 0
        let count = Glibc.read(descriptor, &byte, 1)
        let error = count < 0 ? errno : 0
        close(descriptor)
        return error
    }

    static func create(_ path: String) -> Int32 {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { return errno }
        close(descriptor)
        return 0
    }

    static func connect(port: UInt16) -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return errno }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return connected == 0 ? 0 : errno
    }

    static func spawn(_ program: String) -> Int32 {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(program), strdup("-c"), strdup("exit 0"), nil]
        defer { argv.forEach { free($0) } }
        let result = posix_spawn(&pid, program, nil, nil, argv, nil)
        guard result == 0 else { return result }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return 0
    }

    static func fork() -> Int32 {
        let pid = Glibc.fork()
        if pid == 0 { _exit(0) }
        guard pid > 0 else { return errno }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return 0
    }

    typealias ReadVector = @convention(c) (pid_t, UnsafePointer<iovec>, UInt, UnsafePointer<iovec>, UInt, UInt) -> Int
    /// glibc's process_vm_readv, which Swift's Glibc module does not export.
    static let processVMReadv = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "process_vm_readv")!, to: ReadVector.self)

    static func readMemory(of pid: pid_t) -> Int32 {
        // Any mapped address of the other process will do: the first of its maps is not readable here, so take a
        // stack variable's address, which a process of the same binary has mapped too.
        var buffer = [UInt8](repeating: 0, count: 8)
        var target: UInt64 = 0
        let read = withUnsafeMutablePointer(to: &target) { remotePointer in
            buffer.withUnsafeMutableBytes { local in
                var localVector = iovec(iov_base: local.baseAddress, iov_len: 8)
                var remoteVector = iovec(iov_base: UnsafeMutableRawPointer(remotePointer), iov_len: 8)
                return processVMReadv(pid, &localVector, 1, &remoteVector, 1, 0)
            }
        }
        // EFAULT: the address is not mapped there, but the kernel let this process try, which is the escape.
        return read >= 0 || errno == EFAULT ? 0 : errno
    }
}
