#if canImport(Glibc)
    import Glibc
#endif

/// The addresses of a host, and of this machine: which of a fleet's peers is this replica (`PEERS` may name them all
/// with one DNS name). `getaddrinfo` blocks: call them off the event loops (`BlockingCalls`).
public enum HostAddresses {
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
