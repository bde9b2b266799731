import Foundation
import ServingCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A models repository as a stranger would push it (docs/operations.md, "Reliability"): every folder of `Tests/Fixtures/hostile`
/// once crashed the server, hung its sync or grew it toward the out-of-memory killer. Served together with Iris by
/// the real `autoserve` binary, each fails with its reason, Iris answers, and the server stays small and up, across
/// a resync of the same folders too.
@Suite(.serialized)
struct UntrustedRepositoryTests {
    static let hostile = "\(Paths.fixtures)/hostile"

    /// The hostile folders and the words their reason must hold (`nil`: a valid model that serves).
    static func cases() throws -> [String: String?] {
        try JSONDecoder().decode([String: String?].self, from: Data(contentsOf: URL(fileURLWithPath: "\(hostile)/reasons.json")))
    }

    /// The resident memory the process `pid` reached at its peak, in bytes.
    static func peakMemory(_ pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return nil }
        return Int(line.split(separator: " ").dropFirst().first ?? "").map { $0 << 10 }
    }

    @Test func eachHostileFolderFailsWithItsReasonAndTheOthersServe() async throws {
        let cases = try Self.cases()
        #expect(cases.count == 17)
        var folders = ["Iris": "\(Paths.modelsServe)/Iris"]
        for name in cases.keys { folders[name] = "\(Self.hostile)/\(name)" }
        let server = try BinaryServer(environment: ["MODELS_DIR": try Paths.modelsFolder(folders), "STATE_DIR": Paths.sharedState])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync(timeout: .seconds(600))
        let first = try #require(try await client.get("/").json)

        for (name, reason) in cases.sorted(by: { $0.key < $1.key }) {
            let model = first[name]
            if let reason {
                #expect(model?["state"] == "failed", "\(name): \(model?.jsonText ?? "absent")")
                let message = model?["last_error"]?["message"]?.string ?? ""
                #expect(message.contains(reason), "\(name): \(message)")
            } else {
                #expect(model?["state"] == "ready", "\(name): \(model?.jsonText ?? "absent")")
            }
        }
        let iris = try await client.post("/Iris", Rows.setosa)
        #expect(iris.status == 200)
        #expect(iris.json?["iris_class"] == "setosa")
        // A raw value of Int.max is a valid enum: the model serves it.
        let level = try await client.post("/SwiftEnumIntMax", #"{"variables": {"level": 9223372036854775807}}"#)
        #expect(level.status == 200, "\(level.text)")
        let openAPI = try await client.get("/openapi.json")
        #expect(openAPI.status == 200)
        #expect(openAPI.body.count < 1 << 20, "the OpenAPI document is \(openAPI.body.count) bytes")

        // A resync of the same folders changes nothing: the same states, versions and reasons.
        let synced = first["_server"]?["last_sync"]?["id"]?.int ?? 0
        kill(server.process.processIdentifier, SIGHUP)
        try await eventually("the resync finished", timeout: .seconds(300)) {
            let sync = (try? await client.get("/"))?.json?["_server"]?["last_sync"]
            return (sync?["id"]?.int ?? 0) > synced && sync?["result"] == "success"
        }
        let second = try #require(try await client.get("/").json)
        for name in cases.keys.sorted() + ["Iris"] {
            #expect(second[name]?["state"] == first[name]?["state"], "\(name)")
            #expect(second[name]?["version"] == first[name]?["version"], "\(name)")
            #expect(second[name]?["last_error"]?["message"] == first[name]?["last_error"]?["message"], "\(name)")
        }
        #expect(try await client.post("/Iris", Rows.setosa).status == 200)
        #expect(server.process.isRunning)
        let peak = try #require(Self.peakMemory(server.process.processIdentifier))
        #expect(peak < 1_500 << 20, "the server's resident memory peaked at \(peak >> 20) MB")
    }

    /// The index page's curl lines, pasted into a shell, run curl and nothing else, whatever a manifest's example and
    /// the request's Host header say; and a folder named after a server endpoint fails, saying so.
    @Test func curlLinesRunNothingElseAndReservedNamesFail() async throws {
        let injection = "'; touch pwned; echo '"
        let hostile = try Paths.temporaryFolder("curl-hostile")
        try FileManager.default.copyItem(atPath: "\(Paths.fixtures)/models/Echo/etls.swift", toPath: "\(hostile)/etls.swift")
        try "examples:\n  - variables: {note: \"\(injection)\"}\n".write(toFile: "\(hostile)/model.yaml", atomically: true, encoding: .utf8)
        let models = ["Hostile": hostile, "hooks": "\(Paths.fixtures)/models/Echo", "Iris": "\(Paths.modelsServe)/Iris"]
        try await withTestServer(try await TestServer.start(models: models)) { server async throws in
            let index = try await server.client.get("/").json
            #expect(index?["hooks"]?["state"] == "failed")
            #expect(index?["hooks"]?["last_error"]?["message"]?.string?.contains("the route /hooks is taken by the server's own endpoint") == true)
            let host = "x';touch pwned-host;'"
            let page = String(
                decoding: try await offThread {
                    try RawHTTP.readToEnd(
                        port: server.port, request: Array("GET / HTTP/1.1\r\nHost: \(host)\r\nAccept: text/html\r\nConnection: close\r\n\r\n".utf8))
                }, as: UTF8.self)
            let lines = page.components(separatedBy: "<code>curl").dropFirst().map { "curl" + $0.components(separatedBy: "</code>")[0] }.map {
                $0.replacingOccurrences(of: "&#39;", with: "'").replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&lt;", with: "<")
                    .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
            }
            #expect(lines.count == 3, "the index's line and one per ready model: \(lines)")
            let folder = try Paths.temporaryFolder("curl-paste")
            for line in lines {
                // curl, as the shell sees it: each argument it would get, one per line.
                let run = try runWithInput("/bin/sh", ["-c", "curl() { printf '%s\\n' \"$@\"; }; " + line], input: Data(), directory: folder)
                #expect(run.status == 0, "\(line): \(run.output)")
                #expect(run.output.contains("http://\(host)/"), "\(run.output)")
                if line.contains("Hostile") { #expect(run.output.contains(#"{"variables":{"note":"\#(injection)"}}"#), "\(run.output)") }
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty, "a pasted line ran more than curl")
        }
    }

    /// `MAX_WORKERS` bounds the workers of every model together: a version that would pass it fails, naming it, and
    /// the models within it serve.
    @Test func aVersionPastMaxWorkersFailsNamingIt() async throws {
        let greedy = try Paths.temporaryFolder("greedy")
        try FileManager.default.copyItem(atPath: "\(Paths.fixtures)/models/Echo/etls.swift", toPath: "\(greedy)/etls.swift")
        try "workers: 64\n".write(toFile: "\(greedy)/model.yaml", atomically: true, encoding: .utf8)
        let models = ["Greedy": greedy, "Iris": "\(Paths.modelsServe)/Iris"]
        try await withTestServer(try await TestServer.start(models: models) { $0.maxWorkers = 8 }) { server async throws in
            let index = try await server.client.get("/").json
            #expect(index?["Greedy"]?["state"] == "failed")
            let message = index?["Greedy"]?["last_error"]?["message"]?.string ?? ""
            #expect(message.contains("over MAX_WORKERS (8)") && message.contains("lower workers in Greedy's model.yaml"), "\(message)")
            #expect(try await server.client.post("/Iris", Rows.setosa).status == 200)
        }
    }
}
