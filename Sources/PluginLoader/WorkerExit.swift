#if canImport(Glibc)
    import Glibc
#endif

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

    /// What the requests the worker was serving are told (503).
    func message(model: String) -> String {
        switch self {
        case .crashed(let how): "\(model) crashed (\(how)) while serving this request; its worker is restarting"
        case .timedOut: "\(model)'s worker was restarted because a request took longer than its timeout"
        case .overMemory(let megabytes): "\(model)'s worker was stopped for using more than memory_mb (\(megabytes) MB)"
        case .stopped: "\(model)'s worker stopped"
        }
    }

    /// A `waitpid` status in words: `signal 4, Illegal instruction` or `exit status 1`.
    static func describe(_ status: Int32) -> String {
        let signal = status & 0x7F
        if signal != 0 {
            let name = strsignal(signal).map { String(cString: $0) } ?? "unknown"
            return "signal \(signal), \(name)"
        }
        return "exit status \((status >> 8) & 0xFF)"
    }
}
