import Foundation
public import Logging
public import ServingCore
import Synchronization

/// Forwards a sync to the other replicas of a fleet (`PEERS`, docs/configuration.md "Configuration"): a replica that accepts a
/// verified webhook, an admin sync or a SIGHUP asks every peer but itself for one sync, so that one push
/// converges every replica in seconds rather than at each one's `SYNC_INTERVAL`.
///
/// `PEERS` is a comma-separated list of `host:port`; a host may be a DNS name with many addresses (a Kubernetes
/// headless Service), resolved again at each forward. A peer is asked with `POST $baseUrl/-/sync` and
/// `ADMIN_TOKEN`, and a header that tells it not to forward again. Each forward is one attempt with a short
/// timeout; a failure is logged and counted, never retried in a loop (the peer's own schedule catches up).
public final class PeerSync: Sendable {
    /// The header of a forwarded sync: its receiver does not forward it again.
    public static let forwardedHeader = "X-AutoServe-Forwarded"
    static let timeoutSeconds = 3

    let peers: [(host: String, port: Int)]
    let token: Secret
    let prefix: String
    let metrics: Metrics
    let logger: Logger
    /// The port this replica listens on, known once it listens: an address of this machine with this port is
    /// this replica.
    let ownPort = Atomic<Int>(0)

    /// Reads `PEERS`; `nil` when it is empty.
    // A factory over a plain initializer: a failable, throwing initializer of a class with an `Atomic` property made
    // Swift 6.3's optimizer crash (an ownership error in CopyPropagation) in release builds.
    public static func make(peers: String, token: Secret, prefix: String, metrics: Metrics, logger: Logger) throws(PeerListError) -> PeerSync? {
        let entries = peers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !entries.isEmpty else { return nil }
        let list = try entries.map { entry throws(PeerListError) in
            guard let colon = entry.lastIndex(of: ":"), let port = Int(entry[entry.index(after: colon)...]), (1...65535).contains(port),
                colon != entry.startIndex
            else {
                throw PeerListError(
                    "PEERS: '\(entry)' is not host:port; list the replicas like peers.default.svc.cluster.local:8080 or 10.0.0.5:8080,10.0.0.6:8080")
            }
            var host = String(entry[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return (host: host, port: port)
        }
        return PeerSync(peers: list, token: token, prefix: prefix, metrics: metrics, logger: logger)
    }

    init(peers: [(host: String, port: Int)], token: Secret, prefix: String, metrics: Metrics, logger: Logger) {
        self.peers = peers
        self.token = token
        self.prefix = prefix
        self.metrics = metrics
        self.logger = logger
    }

    public func listening(on port: Int) {
        ownPort.store(port, ordering: .relaxed)
    }

    /// Asks every peer for a sync, concurrently, and returns at once.
    public func forward(reason: String) {
        Task { await forwardNow(reason: reason) }
    }

    /// Asks every peer for a sync and waits for their answers; returns how many took it.
    @discardableResult
    func forwardNow(reason: String) async -> Int {
        let own = ownPort.load(ordering: .relaxed)
        // Name resolution blocks: on the blocking pool, not on the concurrency pool.
        let peers = peers
        let (local, resolved) = await BlockingCalls.run { (HostAddresses.localAddresses(), peers.map { HostAddresses.addresses(of: $0.host) }) }
        var targets: [(host: String, port: Int)] = []
        for (peer, addresses) in zip(peers, resolved) {
            if addresses.isEmpty { logger.warning("peer sync: the peer does not resolve", metadata: ["peer": "\(peer.host):\(peer.port)"]) }
            for address in addresses where !(peer.port == own && local.contains(address)) { targets.append((address, peer.port)) }
        }
        let (prefix, token) = (prefix, token)
        let (metrics, logger) = (metrics, logger)
        return await withTaskGroup(of: Bool.self) { group in
            for target in targets {
                group.addTask {
                    let status = await HTTPStatusClient.status(
                        host: target.host, port: target.port, method: .POST, path: "\(prefix)/-/sync",
                        headers: [("Authorization", "Bearer \(token.value)"), (Self.forwardedHeader, "1")], timeout: .seconds(Int64(Self.timeoutSeconds)))
                    let accepted = status == 202
                    metrics.increment("autoserve_peer_syncs_total", labels: [accepted ? "success" : "failure"])
                    if !accepted {
                        logger.warning(
                            "peer sync: the peer did not take the sync; it catches up at its own SYNC_INTERVAL",
                            metadata: ["peer": "\(target.host):\(target.port)", "answer": "\(status.map(String.init) ?? "none")", "reason": "\(reason)"]
                        )
                    }
                    return accepted
                }
            }
            var accepted = 0
            for await taken in group where taken { accepted += 1 }
            return accepted
        }
    }
}

/// A `PEERS` value that cannot be used, with what to write instead.
public struct PeerListError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}
