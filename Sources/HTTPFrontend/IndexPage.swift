import AutoServeModel
import Foundation
import ModelManager
import ServingCore

/// The index as a page (docs/http-api.md, "The index as a page"): what `GET /$baseUrl/` answers a browser (`Accept: text/html`).
///
/// The serving commit and the last sync; a row per model folder with its state, version, load time, requests and
/// p50/p99 since start, and its last error with the build log folded; a "try it" form per ready model, prefilled with
/// its manifest's first example. Self-contained (no external script, style or font), readable without JavaScript
/// (only the forms need it), and every text that comes from a folder, a manifest or an error is escaped.
enum IndexPage {
    /// `origin` is where the browser reached the server (`http://<Host>`), for the curl lines.
    static func render(_ snapshot: RegistrySnapshot, prefix: String, metrics: Metrics, origin: String) -> [UInt8] {
        let readiness = snapshot.readiness
        var html = """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>AutoServe</title>
            <style>\(style)</style>
            </head>
            <body>
            <h1>AutoServe</h1>

            """
        html += "<p id=\"server\" data-ready=\"\(readiness.ready)\">"
        html += readiness.ready ? "<span class=\"ready\">ready</span>" : "<span class=\"failed\">not ready</span>: \(escape(readiness.reason))"
        html += " · serving commit <code>\(escape(snapshot.commit.map { String($0.prefix(12)) } ?? "none (a local folder)"))</code>"
        html += " · source <code>\(escape(snapshot.source))</code>"
        if let sync = snapshot.lastSync {
            html += " · last sync #\(sync.id) \(sync.succeeded ? "succeeded" : "<span class=\"failed\">failed</span>")"
            html += " at \(escape(sync.finishedAt.formatted(.iso8601))): \(escape(sync.message))"
        } else {
            html += " · no sync finished yet"
        }
        html += "</p>\n"
        html += "<p><a href=\"\(escape(prefix))/openapi.json\">openapi.json</a> · <a href=\"/metrics\">metrics</a> · "
        html += "JSON: <code>\(escape("curl \(shellQuoted(origin + prefix + "/"))"))</code></p>\n"
        html += "<table>\n<thead><tr><th>Model</th><th>State</th><th>Version</th><th>Loaded</th><th>Type</th><th>Requests</th>"
        html += "<th>p50</th><th>p99</th></tr></thead>\n<tbody>\n"
        let names = snapshot.models.keys.sorted()
        for name in names {
            let status = snapshot.models[name]!
            let serving = status.serving
            let state = status.currentState.rawValue
            let latency = metrics.existingLatencyCounts(name)?.summary([0.5, 0.99])
            html += "<tr id=\"model-\(escape(name))\" class=\"model\" data-state=\"\(state)\">"
            html += "<td><a href=\"#try-\(escape(name))\">\(escape(name))</a>"
            if let summary = serving?.summary { html += "<br><small>\(escape(summary))</small>" }
            html += "</td><td class=\"state \(state)\">\(state)</td>"
            html += "<td><code title=\"\(escape(serving?.version ?? ""))\">\(escape(serving.map { String($0.version.prefix(12)) } ?? "—"))</code></td>"
            html += "<td class=\"nowrap\">\(escape(serving.map { $0.loadedAt.formatted(.iso8601) } ?? "—"))</td>"
            html += "<td>\(escape(serving?.typeName ?? "—"))</td>"
            html += "<td class=\"count\">\(latency?.count ?? 0)</td>"
            html += "<td class=\"nowrap\">\(milliseconds(latency?.values[0]))</td><td class=\"nowrap\">\(milliseconds(latency?.values[1]))</td></tr>\n"
            if let error = status.currentError {
                html += "<tr class=\"error\" data-model=\"\(escape(name))\"><td colspan=\"8\"><strong>Last error</strong>"
                if let version = error.version { html += " (version <code>\(escape(String(version.prefix(12))))</code>)" }
                html += ": <span class=\"message\">\(escape(error.diagnostic.description))</span>"
                if let log = error.log, !log.isEmpty {
                    html += "<details><summary>Build log</summary><pre>\(escape(log))</pre></details>"
                }
                html += "</td></tr>\n"
            }
        }
        if names.isEmpty { html += "<tr><td colspan=\"8\">No model folder yet.</td></tr>\n" }
        html += "</tbody>\n</table>\n<h2>Try it</h2>\n"
        html += "<noscript><p>The forms need JavaScript; without it, send the same body with curl.</p></noscript>\n"
        let ready = snapshot.servingVersions.sorted { $0.name.rawValue < $1.name.rawValue }
        if ready.isEmpty { html += "<p>No model is ready yet.</p>\n" }
        for version in ready {
            let name = version.name.rawValue
            let route = "\(prefix)/\(name)"
            var example: [UInt8] = []
            _ = JSON.writeObject(["variables": version.example ?? [:]], into: &example)
            let body = String(decoding: example, as: UTF8.self)
            html += "<section class=\"try\" id=\"try-\(escape(name))\"><h3>\(escape(name))</h3>\n"
            html += "<form method=\"post\" action=\"\(escape(route))\" data-route=\"\(escape(route))\" data-model=\"\(escape(name))\">"
            html += "<textarea name=\"body\" rows=\"4\" spellcheck=\"false\" aria-label=\"Request body for \(escape(name))\">\(escape(body))</textarea>"
            html += "<button type=\"submit\">POST \(escape(route))</button>"
            // A model that explains its scores: the answer's contributions drawn as bars (docs/explanations.md).
            if version.explainRefusal == nil { html += " <label><input type=\"checkbox\" name=\"explain\"> explain</label>" }
            html += "</form>\n<div class=\"chart\"></div>\n"
            html += "<pre class=\"answer\" aria-live=\"polite\"></pre>\n"
            html += "<p><small><code>\(escape("curl -s -X POST \(shellQuoted(origin + route)) -d \(shellQuoted(body))"))</code></small></p></section>\n"
        }
        html += "<script>\(script)</script>\n</body>\n</html>\n"
        return Array(html.utf8)
    }

    /// `seconds` in milliseconds, as the page shows it; a dash before any request.
    static func milliseconds(_ seconds: Double?) -> String {
        guard let seconds else { return "—" }
        let value = seconds * 1000
        return value < 1 ? String(format: "%.2f ms", value) : value < 100 ? String(format: "%.1f ms", value) : String(format: "%.0f ms", value)
    }

    /// `text` as one word of a POSIX shell, whatever it holds: in single quotes, each `'` written as `'\''`. A curl
    /// line a person pastes runs only curl, whatever a manifest's example or the request's Host header says.
    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    /// The text as HTML text or an attribute value (`HTML.escaped`).
    static func escape(_ text: String) -> String {
        HTML.escaped(text)
    }

    static let style = """
        body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1d2430}\
        h1{margin:0 0 .3rem}code,pre,textarea{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:13px}\
        table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #d8dde6;vertical-align:top}\
        th{background:#f3f5f9}td.count{text-align:right}td.nowrap{white-space:nowrap}.state.ready,.ready{color:#176f2c;font-weight:600}\
        .state.failed,.failed{color:#b3261e;font-weight:600}.state.loading{color:#8a5a00;font-weight:600}\
        tr.error td{background:#fff4f3}details pre{max-height:20rem;overflow:auto;background:#f7f7f9;padding:.5rem}\
        section.try{border:1px solid #d8dde6;border-radius:6px;padding:.4rem 1rem 1rem;margin:1rem 0}\
        textarea{width:100%;box-sizing:border-box}button{margin-top:.4rem;padding:.3rem .9rem}\
        pre.answer{background:#f7f7f9;padding:.5rem;white-space:pre-wrap;min-height:1.2rem}\
        svg.explanation{display:block;margin:.6rem 0;font-size:12px}svg.explanation text{fill:#1d2430}\
        svg.explanation rect.up{fill:#c0392b}svg.explanation rect.down{fill:#2e7d4f}svg.explanation line{stroke:#1d2430}
        """

    /// Sends a form's body as JSON to its model (with `"explain": true` when its box is ticked) and shows the status,
    /// the answer and the explanation as a bar chart: a bar from the base line for each feature of `top`, labelled with
    /// its reason text, and one for the other features together, right for what raised the score, left for what lowered
    /// it. Every text is set as text, never as markup. `#explain-<Model>` in the address explains that model's example
    /// on load.
    static let script = """
        const svgNS = "http://www.w3.org/2000/svg";
        function svgElement(name, attributes, text) {
          const element = document.createElementNS(svgNS, name);
          for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
          if (text !== undefined) element.textContent = text;
          return element;
        }
        function number(value) { return Math.abs(value) >= 1000 || Math.abs(value) < 0.001 && value !== 0 ? value.toExponential(2) : value.toFixed(3); }
        function chart(title, explanation) {
          // The top features with their reason texts, and the rest of the contributions as one bar.
          const top = explanation.top || [];
          const bars = top.map((entry, index) => [entry[0], entry[1], (explanation.reasons || [])[index] || entry[0]]);
          const listed = new Set(top.map((entry) => entry[0]));
          const rest = Object.entries(explanation.contributions || {}).filter(([feature, value]) => !listed.has(feature) && value !== 0);
          if (rest.length > 0) bars.push(["", rest.reduce((sum, [, value]) => sum + value, 0), `${rest.length} other feature${rest.length > 1 ? "s" : ""}`]);
          const largest = Math.max(1e-12, ...bars.map(([, value]) => Math.abs(value)));
          const row = 22, label = 280, half = 190, first = 40, width = label + 2 * half + 70;
          const zero = label + half + 10;
          const score = explanation.base + Object.values(explanation.contributions || {}).reduce((sum, value) => sum + value, 0);
          const height = first + row * bars.length + 10;
          const svg = svgElement("svg", {class: "explanation", width: width, height: height, viewBox: `0 0 ${width} ${height}`, role: "img"});
          svg.appendChild(svgElement("title", {}, title));
          svg.appendChild(svgElement("text", {x: 0, y: 14, "font-weight": "600"}, title));
          svg.appendChild(svgElement("text", {x: zero, y: 30, "text-anchor": "middle", class: "base"}, `base ${number(explanation.base)} → raw score ${number(score)}`));
          bars.forEach(([feature, value, reason], index) => {
            const y = first + row * index;
            const length = Math.abs(value) / largest * half;
            svg.appendChild(svgElement("text", {x: label, y: y + 15, "text-anchor": "end", class: "reason"}, reason));
            const rect = svgElement("rect", {x: value > 0 ? zero : zero - length, y: y + 4, width: Math.max(length, 1), height: row - 8, class: value > 0 ? "up" : "down", "data-feature": feature, "data-value": value});
            rect.appendChild(svgElement("title", {}, `${feature || reason}: ${value}`));
            svg.appendChild(rect);
            svg.appendChild(svgElement("text", {x: value > 0 ? zero + length + 4 : zero - length - 4, y: y + 15, "text-anchor": value > 0 ? "start" : "end", class: "value"}, (value > 0 ? "+" : "") + number(value)));
          });
          svg.appendChild(svgElement("line", {x1: zero, x2: zero, y1: first - 4, y2: first + row * bars.length, class: "base-line"}));
          return svg;
        }
        function draw(place, explanation) {
          place.replaceChildren();
          if (!explanation) return;
          if (typeof explanation.base === "number") { place.appendChild(chart("Why this score", explanation)); return; }
          for (const [name, one] of Object.entries(explanation)) place.appendChild(chart(`Why this score of ${name}`, one));
        }
        for (const form of document.querySelectorAll("form[data-route]")) {
          form.addEventListener("submit", async (event) => {
            event.preventDefault();
            const place = form.nextElementSibling;
            const answer = place.nextElementSibling;
            answer.textContent = "…";
            let body = form.elements.body.value;
            if (form.elements.explain && form.elements.explain.checked) {
              try { const parsed = JSON.parse(body || "{}"); parsed.explain = true; body = JSON.stringify(parsed); } catch (error) {}
            }
            try {
              const response = await fetch(form.dataset.route, {method: "POST", headers: {"Content-Type": "application/json"}, body: body});
              const text = await response.text();
              let shown = text, parsed = null;
              try { parsed = JSON.parse(text); shown = JSON.stringify(parsed, null, 2); } catch (error) {}
              draw(place, parsed && parsed._explanation);
              answer.textContent = response.status + " " + response.statusText + "\\n" + shown;
            } catch (error) {
              answer.textContent = String(error);
            }
          });
        }
        if (location.hash.startsWith("#explain-")) {
          const name = decodeURIComponent(location.hash.slice("#explain-".length));
          const form = [...document.querySelectorAll("form[data-model]")].find((candidate) => candidate.dataset.model === name);
          if (form && form.elements.explain) { form.elements.explain.checked = true; form.requestSubmit(); }
        }
        """
}
