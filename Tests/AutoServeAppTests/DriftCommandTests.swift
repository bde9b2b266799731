import Foundation
import ServingCore
import Testing

/// `autoserve drift` as a user runs it: exit codes, JSON, and an HTML report that headless Chromium (Debian's
/// `chromium`, which `make test` installs) opens and renders with the table and one SVG per feature.
@Suite struct DriftCommandTests {
    static let fixtures = "\(Paths.fixtures)/drift"

    @Test func exitCodesSayWhetherSomethingDrifted() throws {
        let shifted = try CommandLineTests.run([
            "drift", "--reference", "\(Self.fixtures)/reference.jsonl", "--current", "\(Self.fixtures)/current-shifted.jsonl", "--model", "Churn",
        ])
        #expect(shifted.status == 3, "\(shifted.output)")
        #expect(shifted.output.contains("segment") && shifted.output.contains("drifted"), "\(shifted.output)")
        let unshifted = try CommandLineTests.run([
            "drift", "--reference", "\(Self.fixtures)/reference.jsonl", "--current", "\(Self.fixtures)/current-unshifted.csv", "--json",
        ])
        #expect(unshifted.status == 0, "\(unshifted.output)")
        let json = try JSONParser.parse(Array(unshifted.output.utf8))
        #expect(json["drifted"] == .array([]))
        #expect(json["features"]?.array?.count == 4)
        let missing = try CommandLineTests.run(["drift", "--reference", "/nonexistent.jsonl", "--current", "\(Self.fixtures)/current-unshifted.csv"])
        #expect(missing.status == 1)
        #expect(missing.output.contains("/nonexistent.jsonl: cannot read the file"), "\(missing.output)")
        let otherModel = try CommandLineTests.run([
            "drift", "--reference", "\(Self.fixtures)/reference.jsonl", "--current", "\(Self.fixtures)/current-shifted.jsonl", "--model", "Nobody",
        ])
        #expect(otherModel.status == 1)
        #expect(otherModel.output.contains("no rows of model Nobody"), "\(otherModel.output)")
    }

    @Test func theHTMLReportRendersInChromium() async throws {
        let chromium = try #require(
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
            "Debian's chromium is missing: make test-deps installs it")
        let page = "\(try Paths.temporaryFolder("drift-html"))/report.html"
        let run = try CommandLineTests.run([
            "drift", "--reference", "\(Self.fixtures)/reference.jsonl", "--current", "\(Self.fixtures)/current-shifted.jsonl", "--model", "Churn", "--html",
            page,
        ])
        #expect(run.status == 3)
        let html = try String(contentsOfFile: page, encoding: .utf8)
        for reference in ["<script", "src=", "href=", "url(", "@import"] {
            #expect(!html.contains(reference), "self-contained, nothing fetched: \(reference)")
        }
        // What Chromium parsed and laid out, as its DOM.
        let rendered = try await offThread {
            try runWithInput(
                chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(page).profile", "--dump-dom", "file://\(page)"], input: Data())
        }
        #expect(rendered.status == 0, "\(rendered.output.suffix(2000))")
        let dom = rendered.output
        #expect(dom.components(separatedBy: "<svg").count - 1 == 4, "one histogram per feature")
        #expect(dom.contains(#"<table id="features">"#))
        #expect(dom.components(separatedBy: "<tr class=").count - 1 == 4, "one table row per feature")
        // Drifted features first: the first section is a drifted one.
        let firstSection = try #require(dom.range(of: "<section"))
        #expect(dom[firstSection.lowerBound...].prefix(200).contains("drifted"), "\(dom[firstSection.lowerBound...].prefix(200))")
    }
}
