import Foundation
import ServingCore
import Testing

/// docs/http-api.md's "The index as a page": what a browser gets at `/$baseUrl/`, rendered by Debian's real Chromium (headless,
/// `--dump-dom`) from a live server with a ready, a failed and a loading model, and a description made to inject HTML.
@Suite(.serialized)
struct IndexPageTests {
    static let injection = #"<img src=x onerror="alert(1)"> & <script>alert(2)</script>"#

    @Test func aBrowserGetsThePageWithEveryStateTheErrorAndATryItForm() async throws {
        let chromium = try #require(
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
            "Debian's chromium is missing: make test-deps installs it")
        let hostile = try Paths.temporaryFolder("index-page-hostile")
        try FileManager.default.copyItem(atPath: "\(Paths.fixtures)/models/Echo/etls.swift", toPath: "\(hostile)/etls.swift")
        try "description: '\(Self.injection.replacingOccurrences(of: "'", with: "''"))'\n".write(
            toFile: "\(hostile)/model.yaml", atomically: true, encoding: .utf8)
        let models = [
            "Iris": "\(Paths.modelsServe)/Iris", "CompileError": "\(Paths.fixtures)/broken/CompileError",
            "SlowInit": "\(Paths.fixtures)/models/SlowInit", "Hostile": hostile,
        ]
        try await withTestServer(try await TestServer.start(models: models, waitUntilReady: false)) { server async throws in
            let client = server.client
            // Iris serving and CompileError failed while SlowInit is still in its 20 s init(path:).
            try await eventually("Iris ready, CompileError failed, SlowInit loading", timeout: .seconds(300)) {
                let index = try await client.get("/").json
                return index?["Iris"]?["state"] == "ready" && index?["Hostile"]?["state"] == "ready" && index?["CompileError"]?["state"] == "failed"
            }
            #expect(try await client.get("/").json?["SlowInit"]?["state"] == "loading", "the test needs a model still loading")
            _ = try await client.post("/Iris", #"{"variables": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}"#)

            // JSON stays the default for every other client.
            let json = try await client.get("/")
            #expect(json.header("Content-Type") == "application/json" && json.header("Vary") == "Accept")
            let html = try await client.send("GET", "/", headers: ["Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"])
            #expect(html.header("Content-Type") == "text/html; charset=utf-8")
            for reference in ["<script src", "<link", "url(", "@import", "https://"] {
                #expect(!html.text.contains(reference), "self-contained, nothing fetched: \(reference)")
            }
            #expect(!html.text.contains(Self.injection), "the description is escaped")

            let profile = try Paths.temporaryFolder("index-page-chromium")
            let rendered = try await offThread {
                try runWithInput(
                    chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile)", "--dump-dom", "http://127.0.0.1:\(server.port)/"],
                    input: Data())
            }
            #expect(rendered.status == 0, "\(rendered.output.suffix(2000))")
            let dom = rendered.output
            #expect(dom.contains(#"<tr id="model-Iris" class="model" data-state="ready">"#), "\(dom.prefix(3000))")
            #expect(dom.contains(#"<tr id="model-CompileError" class="model" data-state="failed">"#))
            #expect(dom.contains(#"<tr id="model-SlowInit" class="model" data-state="loading">"#))
            // The failed model's error and its build log, folded.
            let error = try #require(dom.range(of: #"<tr class="error" data-model="CompileError">"#), "no error row: \(dom.prefix(4000))")
            let errorRow = dom[error.lowerBound...].prefix { $0 != "\n" }
            #expect(errorRow.contains("CompileError/etls.swift:7: compile error: cannot convert value of type"), "\(errorRow.prefix(600))")
            #expect(errorRow.contains("<details><summary>Build log</summary><pre>"))
            // Iris answered one request: counted, with its p50 and p99.
            let iris = try #require(dom.range(of: #"<tr id="model-Iris""#))
            let irisRow = dom[iris.lowerBound...].prefix { $0 != "\n" }
            #expect(irisRow.contains(#"<td class="count">1</td>"#) && irisRow.contains(" ms</td>"), "\(irisRow)")
            // The hostile description is text in the DOM, not an element.
            #expect(!dom.contains("<img src=\"x\""), "no element made from a description")
            #expect(
                dom.contains("&lt;img src=x onerror=\"alert(1)\"&gt;") || dom.contains("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"), "\(dom.prefix(4000))")
            // A try-it form for each ready model only, prefilled with its manifest's example, which the model accepts.
            #expect(dom.contains(#"<section class="try" id="try-Iris">"#) && !dom.contains(#"id="try-SlowInit""#) && !dom.contains(#"id="try-CompileError""#))
            let textarea = try #require(dom.range(of: #"aria-label="Request body for Iris">"#))
            let prefilled = dom[textarea.upperBound...].prefix { $0 != "<" }.replacingOccurrences(of: "&quot;", with: "\"")
            let tried = try await client.post("/Iris", prefilled)
            #expect(tried.status == 200 && tried.json?["iris_class"] == "setosa", "\(prefilled): \(tried.text)")
            #expect(dom.contains(#"<a href="/openapi.json">openapi.json</a>"#) && dom.contains(#"<a href="/metrics">metrics</a>"#))
        }
    }
}
