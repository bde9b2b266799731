import Foundation
import ServingCore
import Testing

/// A bad folder is reported in the index with what to fix, and never stops the models that work.
@Suite(.serialized)
struct BrokenFolderTests {
    @Test func everyBrokenFolderIsReportedAndTheGoodModelServes() async throws {
        var models = ["Iris": "\(Paths.modelsServe)/Iris", "healthz": "\(Paths.fixtures)/models/Echo"]
        for name in ["BadManifest", "NoInit", "TwoTypes", "FailingExample", "NoEtls", "ThrowingInit", "1bad", "all"] {
            models[name] = "\(Paths.fixtures)/broken/\(name)"
        }
        try await withTestServer(try await TestServer.start(models: models)) { server async throws in
            let index = try await server.client.get("/")
            func lastError(_ name: String) -> String { index.json?[name]?["last_error"]?["message"]?.jsonText ?? "<none>" }
            let expectations = [
                "BadManifest": "unknown key 'exmaples'",
                "NoInit": "has no init(path: String)",
                "TwoTypes": "several types declare transform_predict",
                "FailingExample": "expected 42, got 41",
                "NoEtls": "etls.swift is missing",
                "ThrowingInit": "init(path:) threw",
                "1bad": "must start with a letter",
                "all": "reserved",
                "healthz": "taken by the server's own endpoint",
            ]
            for (name, fragment) in expectations {
                #expect(index.json?[name]?["state"] == .string("failed"), "\(name)")
                #expect(lastError(name).contains(fragment), "\(name): \(lastError(name))")
            }
            #expect(index.json?["BadManifest"]?["last_error"]?["line"] == .number(3))
            #expect(lastError("TwoTypes").contains("First") && lastError("TwoTypes").contains("Second"))
            #expect(index.json?["Iris"]?["state"] == .string("ready"))
            #expect(try await server.client.post("/Iris", Rows.setosa).status == 200)
            #expect(try await server.client.get("/healthz").json?["status"] == .string("ok"))
        }
    }

    @Test func readinessIs503WithTheReasonUntilTheFirstSyncSucceeds() async throws {
        try await withTestServer(
            try await TestServer.start(models: [:], waitUntilReady: false) { configuration in
                configuration.modelsDir = "/nonexistent/autoserve-models"
            }
        ) { server async throws in
            var answer = try await server.client.get("/readyz")
            try await eventually("the readiness names the missing folder", timeout: .seconds(30)) {
                answer = try await server.client.get("/readyz")
                return answer.error("message")?.jsonText.contains("/nonexistent/autoserve-models") == true
            }
            #expect(answer.status == 503)
            #expect(answer.error("code") == .string("not_ready"))
            #expect(answer.error("message")?.jsonText.contains("/nonexistent/autoserve-models") == true)
            #expect(try await server.client.get("/healthz").status == 200)
            let all = try await server.client.get("/all")
            #expect(all.status == 503)
        }
    }

    @Test func baseUrlPrefixesModelsIndexAndAll() async throws {
        try await withTestServer(
            try await TestServer.start(models: ["Echo": "\(Paths.fixtures)/models/Echo"]) { configuration in
                configuration.baseUrl = "api/v1"
            }
        ) { server async throws in
            #expect(try await server.client.post("/api/v1/Echo", #"{"variables": {"a": true}}"#).json?["echo"] == .object(["a": .bool(true)]))
            #expect(try await server.client.get("/api/v1/all").json?["Echo"] != nil)
            let index = try await server.client.get("/api/v1/")
            #expect(index.json?["Echo"]?["routes"] == .array(["/api/v1/Echo", "/api/v1/all"]))
            #expect(try await server.client.get("/api/v1").status == 200)
            #expect(try await server.client.post("/Echo", "{}").status == 404)
            #expect(try await server.client.get("/healthz").status == 200)
            #expect(try await server.client.get("/metrics").status == 200)
        }
    }
}
