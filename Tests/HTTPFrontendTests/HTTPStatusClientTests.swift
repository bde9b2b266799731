import Foundation
import Synchronization
import Testing

@testable import HTTPFrontend

#if canImport(Glibc)
    import Glibc
#endif

/// The client of the server's own requests (a peer's sync, the health check) against a plain socket that answers as
/// the test says, or never.
struct HTTPStatusClientTests {
    /// A listening socket on loopback that reads one request and answers `answer` (or nothing), on a thread.
    final class OneShotServer: @unchecked Sendable {
        let descriptor: Int32
        let port: Int
        private let received = Mutex<String?>(nil)
        private let done = DispatchSemaphore(value: 0)

        init(answer: String?) throws {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
            }
            guard bound, listen(descriptor, 4) == 0 else {
                close(descriptor)
                throw POSIXError(.EADDRINUSE)
            }
            self.descriptor = descriptor
            port = Int(UInt16(bigEndian: address.sin_port))
            guard let answer else { return }
            Thread.detachNewThread { [self] in
                let client = accept(descriptor, nil, nil)
                var buffer = [UInt8](repeating: 0, count: 4096)
                let count = recv(client, &buffer, buffer.count, 0)
                received.withLock { $0 = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self) }
                _ = Array(answer.utf8).withUnsafeBytes { send(client, $0.baseAddress, $0.count, 0) }
                close(client)
                done.signal()
            }
        }

        var request: String? {
            done.wait()
            return received.withLock { $0 }
        }

        deinit { close(descriptor) }
    }

    @Test func theStatusOfTheAnswerWithTheHeadersSent() async throws {
        let server = try OneShotServer(answer: "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
        let status = await HTTPStatusClient.status(
            host: "127.0.0.1", port: server.port, method: .POST, path: "/api/-/sync", headers: [("Authorization", "Bearer t")], timeout: .seconds(5))
        #expect(status == 202)
        let request = try #require(server.request)
        #expect(request.hasPrefix("POST /api/-/sync HTTP/1.1\r\n"))
        for header in ["Authorization: Bearer t", "Connection: close", "Content-Length: 0", "Host: 127.0.0.1"] {
            #expect(request.contains(header), "\(request)")
        }
    }

    /// Without its timeout the first call would wait for ever, and the run would fail by its own time limit.
    @Test func noAnswerIsNilWithinTheTimeout() async throws {
        // Accepted by the kernel's backlog, never answered.
        let silent = try OneShotServer(answer: nil)
        #expect(await HTTPStatusClient.status(host: "127.0.0.1", port: silent.port, path: "/healthz", timeout: .milliseconds(300)) == nil)
        let closed = try OneShotServer(answer: "")
        #expect(await HTTPStatusClient.status(host: "127.0.0.1", port: closed.port, path: "/healthz", timeout: .seconds(5)) == nil)
        #expect(await HTTPStatusClient.status(host: "127.0.0.1", port: 0, path: "/healthz", timeout: .seconds(1)) == nil)
    }
}
