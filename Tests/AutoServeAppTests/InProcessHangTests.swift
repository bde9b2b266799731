import AutoServeApp
import Foundation
import ServingCore
import Testing

/// In-process models cannot be stopped, but they can be answered: a hung call gets 504 at its deadline, its
/// thread is replaced, and a model that keeps hanging is failed; a slow `init(path:)` holds up no other model.
@Suite(.serialized)
struct InProcessHangTests {
    @Test func hungCallsAnswer504AndTheRestKeepsServing() async throws {
        let slowInit = try ReadinessTests.heldSlowInit()
        defer { ReadinessTests.release(slowInit.release) }
        let models = try Paths.modelsFolder([
            "Hang": "\(Paths.fixtures)/models/Hang", "Echo": "\(Paths.fixtures)/models/Echo", "SlowInit": slowInit.folder,
        ])
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState, "MODEL_ISOLATION": "inprocess"])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        // SlowInit's init(path:) is held meanwhile: health checks answer, and the other models become ready.
        try await eventually("Echo and Hang serve while SlowInit loads") {
            #expect(try await client.get("/healthz").status == 200)
            let index = try await client.get("/").json
            return index?["Echo"]?["state"] == .string("ready") && index?["Hang"]?["state"] == .string("ready")
        }
        #expect(try await client.get("/").json?["SlowInit"]?["state"] == .string("loading"), "the test needs SlowInit still loading")
        let waiting = try await client.get("/readyz")
        #expect(waiting.status == 503 && waiting.text.contains("SlowInit"), "not ready before SlowInit's first load ends: \(waiting.text)")
        ReadinessTests.release(slowInit.release)
        for call in 1...3 {
            // More hung calls than the pool has threads: each is answered at its deadline and its thread replaced.
            let hung = try await client.post("/Hang", #"{"variables": {"mode": "hang"}}"#)
            #expect(hung.status == 504, "hung call \(call): \(hung.text)")
            #expect(try await client.post("/Echo", #"{"variables": {"a": 1}}"#).status == 200, "after hung call \(call)")
            #expect(try await client.get("/healthz").status == 200)
        }
        let index = try await client.get("/")
        #expect(index.json?["Hang"]?["state"] == .string("failed"), "\(index.text)")
        #expect(index.json?["Echo"]?["sandbox"] == .string("none (in-process)"), "an in-process model cannot be confined, and the index says so")
        #expect(index.json?["Hang"]?["last_error"]?["message"]?.jsonText.contains("MODEL_ISOLATION=process") == true)
        #expect(try await client.post("/Hang", #"{"variables": {}}"#).status == 200, "the version still answers what does not hang")
        let all = try await client.post("/all", #"{"variables": {"a": 1}}"#)
        #expect(all.json?["Echo"] != nil, "\(all.text)")
        let metrics = try await client.get("/metrics").text
        #expect(metrics.contains(#"autoserve_inprocess_hung_calls_total{model="Hang"} 3"#))
        #expect(metrics.contains(#"autoserve_model_state{model="Hang",state="failed"} 1"#))
        await server.stopped()
        #expect(server.logs.contains("in-process call hung past its timeout"))
        #expect(server.logs.components(separatedBy: "MODEL_ISOLATION=inprocess: models run inside the server").count == 2, "warned once")
    }
}
