import Foundation
import ServingCore

extension DriftReport {
    /// One self-contained HTML page (`--html`): the table, then a histogram of each feature, reference against
    /// current, as inline SVG, drifted features first. No script, no font, nothing fetched from the network.
    public func html(title: String) -> String {
        var page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(Self.escape(title))</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
            table{border-collapse:collapse}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:right}
            td:first-child,th:first-child{text-align:left}.drifted{color:#b00020;font-weight:bold}.moderate{color:#a86000}
            section{margin-top:2em}.legend span{display:inline-block;width:1em;height:1em;margin:0 .3em 0 1em;vertical-align:middle}
            </style></head><body>
            <h1>\(Self.escape(title))</h1>
            <p>\(referenceRows) reference rows, \(currentRows) current rows; <strong>\(drifted.count) of \(features.count)</strong> features drifted.
            PSI below 0.1 is stable, 0.1 to 0.25 moderate, above 0.25 drifted (bins at the reference's deciles, or one per value; an empty bin counts as 0.0001).</p>
            <table id="features"><thead><tr><th>feature</th><th>kind</th><th>PSI</th><th>verdict</th><th>KS D</th><th>p-value</th><th>rows ref / cur</th><th>skipped ref / cur</th></tr></thead><tbody>

            """
        for feature in features {
            let ks = feature.ks.map { String(format: "<td>%.4f</td><td>%.2e</td>", $0.statistic, $0.pValue) } ?? "<td>–</td><td>–</td>"
            page += "<tr class=\"\(feature.verdict.rawValue)\"><td>\(Self.escape(feature.name))</td><td>\(feature.kind.rawValue)</td>"
            page += String(format: "<td>%.3f</td>", feature.psi) + "<td>\(feature.verdict.rawValue)</td>\(ks)"
            page += "<td>\(feature.rows.reference) / \(feature.rows.current)</td><td>\(feature.skipped.reference) / \(feature.skipped.current)</td></tr>\n"
        }
        page += "</tbody></table>\n"
        page += #"<p class="legend"><span style="background:#4e79a7"></span>reference<span style="background:#f28e2b"></span>current</p>"# + "\n"
        for feature in features {
            page += "<section class=\"feature\" id=\"feature-\(Self.escape(feature.name))\"><h2 class=\"\(feature.verdict.rawValue)\">"
            page += "\(Self.escape(feature.name)): \(feature.verdict.rawValue), PSI \(String(format: "%.3f", feature.psi))</h2>\n"
            page += histogram(feature) + "\n</section>\n"
        }
        return page + "</body></html>\n"
    }

    /// Two bars per bin (each side's share), with the bin's label under them.
    func histogram(_ feature: FeatureDrift) -> String {
        let barWidth = 14.0
        let gap = 18.0
        let height = 160.0
        let left = 40.0
        let top = 10.0
        let width = left + Double(feature.bins.count) * (2 * barWidth + gap) + 10
        let highest = max(feature.bins.map { max($0.reference, $0.current) }.max() ?? 1, 0.0001)
        var svg = String(format: "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" role=\"img\">", width, height + 90)
        svg += "<title>\(Self.escape(feature.name)): share of rows per bin, reference and current</title>"
        svg += String(format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#999\"/>", left, top + height, width, top + height)
        svg += String(format: "<text x=\"2\" y=\"%.0f\" font-size=\"10\">%.0f%%</text>", top + 8, highest * 100)
        for (index, bin) in feature.bins.enumerated() {
            let x = left + Double(index) * (2 * barWidth + gap)
            for (offset, share, color) in [(0.0, bin.reference, "#4e79a7"), (barWidth, bin.current, "#f28e2b")] {
                let barHeight = share / highest * height
                svg += String(
                    format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.0f\" height=\"%.1f\" fill=\"%@\"><title>%@: %.1f%%</title></rect>", x + offset,
                    top + height - barHeight, barWidth, barHeight, color, Self.escape(bin.label), share * 100)
            }
            svg += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" transform=\"rotate(45 %.1f %.1f)\">%@</text>", x, top + height + 12, x, top + height + 12,
                Self.escape(String(bin.label.prefix(24))))
        }
        return svg + "</svg>"
    }

    /// The text as HTML text or an attribute value (`HTML.escaped`: `'` too, which this copy once missed).
    static func escape(_ text: String) -> String {
        HTML.escaped(text)
    }
}
