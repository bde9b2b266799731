import AutoServeApp
import Foundation
import ServingCore
import Testing

/// What a model prints reaches the log one line per event, with its model and stream, never glued to the
/// server's own lines, capped in rate, and what a worker printed before it was killed is not lost.
@Suite(.serialized)
struct ModelOutputTests {
    @Test func eachLineAModelPrintsIsAnEventOfItsOwn() async throws {
        let models = try Paths.modelsFolder(["Printer": "\(Paths.fixtures)/models/Printer"])
        let server = try BinaryServer(environment: ["MODELS_DIR": models, "STATE_DIR": Paths.sharedState])
        defer { server.stop() }
        let client = HTTPClient(base: "http://127.0.0.1:\(try await server.waitUntilListening())")
        try await client.waitForTheFirstSync()
        #expect(try await client.post("/Printer", #"{"variables": {}}"#).status == 200)
        #expect(try await client.post("/Printer", #"{"variables": {"mode": "crash"}}"#).status == 503)
        try await eventually("the worker is back") { try await client.post("/Printer", #"{"variables": {}}"#).status == 200 }
        #expect(try await client.post("/Printer", #"{"variables": {"mode": "flood"}}"#).status == 200)
        let metrics = try await client.get("/metrics").text
        await server.stopped()
        let lines = server.logs.split(separator: "\n")
        let stdout = lines.filter { $0.contains(#"msg="hello from the model""#) }
        #expect(!stdout.isEmpty, "\(server.logs.suffix(2000))")
        for line in stdout {
            #expect(line.hasPrefix("ts="), "a line of its own: \(line)")
            #expect(line.contains("model=Printer") && line.contains("stream=stdout"), "\(line)")
        }
        #expect(lines.contains { $0.contains(#"msg="a warning on stderr""#) && $0.contains("stream=stderr") })
        #expect(lines.contains { $0.contains(#"msg="last words before the trap""#) }, "what the worker printed before it died")
        let floodLines = lines.filter { $0.contains("msg=\"flood line") }
        let flood = floodLines.count
        // At most 100 lines in each second the flood lasted (on a loaded machine it spans two or more).
        let seconds = Set(floodLines.map { $0.prefix { $0 != "." } })
        #expect(flood <= 100 * seconds.count && flood < 1000, "at most 100 lines a second for a model: \(flood) in \(seconds.count) s")
        let dropped = metrics.split(separator: "\n").first { $0.hasPrefix(#"autoserve_model_output_dropped_lines_total{model="Printer"}"#) }
        #expect(dropped.flatMap { Int($0.split(separator: " ").last ?? "") }.map { $0 + flood >= 1000 } == true, "\(dropped ?? "no count")")
    }
}
