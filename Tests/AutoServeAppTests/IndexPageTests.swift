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
        let slowInit = try ReadinessTests.heldSlowInit()
        defer { ReadinessTests.release(slowInit.release) }
        let models = [
            "Iris": "\(Paths.modelsServe)/Iris", "CompileError": "\(Paths.fixtures)/broken/CompileError", "SlowInit": slowInit.folder, "Hostile": hostile,
        ]
        try await withTestServer(try await TestServer.start(models: models, waitUntilReady: false)) { server async throws in
            let client = server.client
            // Iris serving and CompileError failed while SlowInit is held in its init(path:).
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

    /// docs/explanations.md on the page: `#explain-<Model>` ticks the model's explain box and sends its example, and the
    /// answer's explanation is drawn as bars (inline SVG) in headless Chromium: a bar per feature of `top` with its
    /// reason text (escaped: a reason is text, never markup), one for the other features, right when it raised the
    /// score and left when it lowered it, from the base line. A model that does not explain has no box.
    @Test func anExplanationIsDrawnAsBars() async throws {
        let chromium = try #require(
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
            "Debian's chromium is missing: make test-deps installs it")
        let models = [
            "Iris": "\(Paths.modelsServe)/Iris", "CreditScore": "\(Paths.modelsServe)/CreditScore", "Explained": "\(Paths.fixtures)/models/Explained",
        ]
        try await withTestServer(try await TestServer.start(models: models)) { server async throws in
            let index = try await server.client.get("/").json
            #expect(index?["CreditScore"]?["explains"] == .bool(true) && index?["Iris"]?["explains"] == .bool(false), "\(index?.jsonText ?? "")")
            /// The DOM once the page explained `model`'s example.
            func explained(_ model: String) async throws -> String {
                let profile = try Paths.temporaryFolder("index-page-explain")
                let rendered = try await offThread {
                    try runWithInput(
                        chromium,
                        [
                            "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile)", "--virtual-time-budget=20000", "--dump-dom",
                            "http://127.0.0.1:\(server.port)/#explain-\(model)",
                        ], input: Data())
                }
                #expect(rendered.status == 0, "\(rendered.output.suffix(2000))")
                return rendered.output
            }
            let credit = try await explained("CreditScore")
            let svg = try #require(credit.range(of: #"<svg class="explanation""#), "no chart: \(credit.prefix(3000))")
            let chart = String(credit[svg.lowerBound...].prefix { $0 != "\n" })
            // The bars are the answer's: the five of top with their reasons, then the two other features together.
            let answer = try await server.client.post(
                "/CreditScore",
                #"{"variables": {"age": 29, "debt_ratio": 0.45, "home": "rent", "income": 42000, "late_payments": 2, "months_employed": 14, "purpose": "business"}, "explain": true}"#
            )
            let explanation = try #require(answer.json?["_explanation"])
            for (entry, reason) in zip(explanation["top"]?.array ?? [], explanation["reasons"]?.array ?? []) {
                let feature = entry[0]?.string ?? ""
                #expect(chart.contains(#"data-feature="\#(feature)" data-value="\#(entry[1]?.double ?? 0)""#), "\(feature): \(chart.prefix(2000))")
                #expect(chart.contains(">\(reason.string ?? "")</text>"), "\(reason)")
            }
            #expect(chart.contains(">2 other features</text>"), "\(chart.prefix(3000))")
            #expect(chart.components(separatedBy: "<rect ").count - 1 == 6)
            #expect(chart.contains(#"class="base">base -1.210 → raw score 2.486</text>"#), "\(chart.prefix(600))")
            #expect(chart.contains(#"class="base-line""#))
            // Iris does not explain: no box.
            let irisForm = try #require(credit.range(of: #"data-model="Iris""#))
            let creditForm = try #require(credit.range(of: #"data-model="CreditScore""#))
            #expect(!credit[irisForm.lowerBound...].prefix { $0 != "\n" }.split(separator: "</form>")[0].contains(#"name="explain""#))
            #expect(credit[creditForm.lowerBound...].prefix { $0 != "\n" }.split(separator: "</form>")[0].contains(#"name="explain""#))
            // A rise goes right of the base line and a fall left; a reason is text.
            let mixed = try await explained("Explained")
            let mixedSVG = try #require(mixed.range(of: #"<svg class="explanation""#), "no chart: \(mixed.prefix(3000))")
            let mixedChart = String(mixed[mixedSVG.lowerBound...].prefix { $0 != "\n" })
            #expect(mixedChart.contains(#"class="up" data-feature="up" data-value="1""#), "\(mixedChart.prefix(2000))")
            #expect(mixedChart.contains(#"class="down" data-feature="down" data-value="-0.5""#), "\(mixedChart.prefix(2000))")
            #expect(!mixedChart.contains(#"data-feature="zero""#), "a contribution of 0 has no bar")
            #expect(!mixed.contains("<img src=\"x\""), "no element made from a reason")
            #expect(mixedChart.contains("&lt;img src=x onerror=\"alert(3)\"&gt; raised it</text>"), "\(mixedChart.prefix(2000))")
        }
    }
}
