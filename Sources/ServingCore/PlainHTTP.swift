#if canImport(Glibc)
    import Glibc
#endif

/// The few HTTP requests AutoServe makes itself (the container's health check, a sync forwarded to a peer), each
/// one request over a plain blocking socket with a timeout: run them off the event loops (`BlockingCalls`).
public enum PlainHTTP {
    /// The status code of the answer to `request` (a whole HTTP/1.1 request, `Connection: close`) sent to
    /// `host`:`port`, or `nil` when there is no answer within `timeoutSeconds` (connecting included).
    public static func status(host: String, port: Int, request: String, timeoutSeconds: Int) -> Int? {
        guard (1...65535).contains(port) else { return nil }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let first = found else { return nil }
        defer { freeaddrinfo(found) }
        let descriptor = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        // On Linux the send timeout bounds `connect` too.
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(descriptor, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else { return nil }
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else { return nil }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while answer.count < 12 {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            answer += buffer[0..<count]
        }
        // "HTTP/1.1 200 …"
        guard answer.count >= 12, answer.starts(with: Array("HTTP/1.".utf8)) else { return nil }
        return Int(String(decoding: answer[9..<12], as: UTF8.self))
    }

    /// Every address `host` resolves to (a DNS name may name many: a Kubernetes headless Service names every
    /// replica), as numeric text; empty when it does not resolve.
    public static func addresses(of host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &found) == 0 else { return [] }
        defer { freeaddrinfo(found) }
        var addresses: [String] = []
        var entry = found
        while let current = entry {
            if let text = numeric(current.pointee.ai_addr, length: current.pointee.ai_addrlen), !addresses.contains(text) { addresses.append(text) }
            entry = current.pointee.ai_next
        }
        return addresses
    }

    /// This machine's own addresses (every interface's, loopback included), as numeric text.
    public static func localAddresses() -> Set<String> {
        var first: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&first) == 0 else { return [] }
        defer { freeifaddrs(first) }
        var addresses: Set<String> = []
        var entry = first
        while let current = entry {
            if let address = current.pointee.ifa_addr {
                let length = address.pointee.sa_family == sa_family_t(AF_INET6) ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size
                if let text = numeric(address, length: socklen_t(length)) { addresses.insert(text) }
            }
            entry = current.pointee.ifa_next
        }
        return addresses
    }

    static func numeric(_ address: UnsafeMutablePointer<sockaddr>?, length: socklen_t) -> String? {
        guard let address, [sa_family_t(AF_INET), sa_family_t(AF_INET6)].contains(address.pointee.sa_family) else { return nil }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { return nil }
        return String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
