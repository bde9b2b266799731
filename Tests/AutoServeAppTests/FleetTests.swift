import Foundation
import ServingCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Replicas that list each other in `PEERS`: a sync started on one (an admin call, SIGHUP) is asked of every
/// other one once, never of itself, and a forwarded sync is not forwarded again.
@Suite(.serialized)
struct FleetTests {
    static let token = "fleet-admin-token"

    @Test func aSyncStartedOnOneReplicaReachesEveryOther() async throws {
        let models = try Paths.modelsFolder(["Echo": "\(Paths.fixtures)/models/Echo"])
        let ports = try (0..<3).map { _ in try freePort() }
        let peers = ports.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        let servers = try ports.map { port in
            try BinaryServer(environment: [
                "MODELS_DIR": models, "STATE_DIR": Paths.sharedState, "PORT": String(port), "PEERS": peers, "ADMIN_TOKEN": Self.token,
            ])
        }
        defer { servers.forEach { $0.stop() } }
        var clients: [HTTPClient] = []
        for (server, port) in zip(servers, ports) {
            #expect(try await server.waitUntilListening() == port)
            let client = HTTPClient(base: "http://127.0.0.1:\(port)")
            try await client.waitForTheFirstSync()
            clients.append(client)
        }
        func lastSync(_ client: HTTPClient) async throws -> JSONValue? { try await client.get("/").json?["_server"]?["last_sync"]?["id"] }

        // An admin sync on the first replica: one sync on each of the three.
        let started = try await clients[0].send("POST", "/-/sync", headers: ["Authorization": "Bearer \(Self.token)"])
        #expect(started.status == 202)
        for (index, client) in clients.enumerated() {
            try await eventually("replica \(index) ran the second sync", timeout: .seconds(60)) { try await lastSync(client) == .number(2) }
        }
        try await eventually("the first replica counted its two forwards", timeout: .seconds(30)) {
            try await clients[0].get("/metrics").text.contains(#"autoserve_peer_syncs_total{result="success"} 2"#)
        }
        for client in clients.dropFirst() {
            #expect(try await !client.get("/metrics").text.contains("autoserve_peer_syncs_total"), "a forwarded sync is forwarded again")
        }

        // SIGHUP on the last replica: its peers sync too.
        kill(servers[2].process.processIdentifier, SIGHUP)
        for (index, client) in clients.enumerated() {
            try await eventually("replica \(index) ran the third sync", timeout: .seconds(60)) { try await lastSync(client) == .number(3) }
        }
        for server in servers { await server.stopped() }
        #expect(servers[1].logs.contains("reason=peer"), "\(servers[1].logs.suffix(2000))")
        #expect(!servers.contains { $0.logs.contains(Self.token) }, "the token reached a log")
    }

    @Test func peersWithoutAnAdminTokenAreRefusedAtStart() throws {
        let run = try CommandLineTests.run(["serve", "--port", "0"], environment: ["PEERS": "127.0.0.1:8080", "ADMIN_TOKEN": ""])
        #expect(run.status == 78, "\(run.output)")
        #expect(run.output.contains("PEERS needs ADMIN_TOKEN"), "\(run.output)")
        let bad = try CommandLineTests.run(["serve", "--port", "0"], environment: ["PEERS": "just-a-host", "ADMIN_TOKEN": "x"])
        #expect(bad.status == 78, "\(bad.output)")
        #expect(bad.output.contains("is not host:port"), "\(bad.output)")
    }
}
