import Foundation
import HTTPTypes
import ServingCore
import Testing

@testable import HTTPFrontend

/// `RouteTable` is the one list of routes: the router, 405's `Allow`, the reserved names, the OpenAPI document and
/// the route tables of docs/http-api.md agree with it.
struct RouteTableTests {
    @Test(
        arguments: [
            ("/healthz", "", "GET, HEAD"), ("/readyz", "/api", "GET, HEAD"), ("/metrics", "", "GET, HEAD"), ("/hooks/git", "/api", "POST"),
            ("/-/sync", "", "POST"), ("/api/-/sync", "/api", "POST"), ("/", "", "GET, HEAD"), ("/api/", "/api", "GET, HEAD"),
            ("/openapi.json", "", "GET, HEAD"), ("/Iris", "", "GET, POST"), ("/Iris/", "", "GET, POST"), ("/all", "", "GET, POST"),
            ("/api/healthz", "/api", "GET, POST"), ("/v2", "", "GET, HEAD"), ("/v2/health/ready", "", "GET, HEAD"),
            ("/v2/models/Iris", "", "GET, HEAD"), ("/v2/models/Iris/versions/abc", "", "GET, HEAD"), ("/v2/models/Iris/ready", "", "GET, HEAD"),
            ("/v2/models/Iris/versions/abc/infer", "", "POST"), ("/v2/models/Iris/foo", "", nil), ("/v2/models//infer", "", nil),
            ("/Iris/x", "", nil), ("/Iris", "/api", nil), ("/api/v1/Iris", "/api/v1", "GET, POST"), ("/api/v1x/Iris", "/api/v1", nil),
        ] as [(String, String, String?)])
    func eachPathTakesTheRouteTheRouterPicks(path: String, prefix: String, methods: String?) {
        let allowed = RouteTable(prefix: prefix).allowedMethods(path)
        #expect(allowed.map { $0.map(\.rawValue).joined(separator: ", ") } == methods)
    }

    @Test func theReservedNamesComeFromTheTable() {
        #expect(RouteTable.rootNames == ["healthz", "readyz", "metrics", "hooks", "v2"])
        // `ModelName` (a layer below the frontend) refuses these whatever `baseUrl` is.
        #expect(RouteTable.prefixNames == ModelName.reserved)
        // A POST to these is never scored: they are the server's own routes.
        #expect(RouteTable(prefix: "").otherNamesBelowPrefix == ["healthz", "readyz", "metrics", "hooks", "v2", "openapi.json", "-"])
        #expect(RouteTable(prefix: "/api/v1").otherNamesBelowPrefix == ["openapi.json", "-"])
    }

    @Test func theOpenAPIDocumentHasEveryRouteAndNoOther() throws {
        for prefix in ["", "/api/v1"] {
            let document = OpenAPIDocument.document(models: [], prefix: prefix, maxBatchRows: 10, adminSync: true, webhook: true)
            let paths = try #require(document["paths"]?.object)
            var documented: Set<String> = []
            for (path, item) in paths {
                for method in try #require(item.object).keys where method != "parameters" { documented.insert("\(method.uppercased()) \(path)") }
            }
            let table = RouteTable(prefix: prefix)
            let routes = Set(
                table.routes.filter { $0.handler != .model }.flatMap { route in
                    route.methods.filter { $0 != .head }.map { "\($0.rawValue) \(route.path)" }
                })
            #expect(documented == routes)
            for route in table.routes where route.handler != .model {
                let item = try #require(paths[route.path]?.object)
                // A scoring route's summary is its POST's (its GET scores `{}`).
                let method = route.methods.contains(.post) ? "post" : "get"
                #expect(item[method]?["summary"]?.string == route.summary)
            }
        }
        let off = OpenAPIDocument.document(models: [], prefix: "", maxBatchRows: 10)
        #expect(off["paths"]?["/-/sync"] == nil && off["paths"]?["/hooks/git"] == nil)
    }

    /// Every `METHOD /path` of the route tables of docs/http-api.md, and every route of the table (but HEAD, which is GET's) there.
    @Test func theDocumentedRouteTablesListEveryRouteAndNoOther() throws {
        let readme = try String(contentsOfFile: "\(ErrorTableTests.repository)/docs/http-api.md", encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: #"`(GET|HEAD|POST|PUT|DELETE|PATCH) (/[^` ]*)`"#)
        var listed: Set<String> = []
        for line in readme.components(separatedBy: "\n") where line.hasPrefix("| `") {
            let firstCell = String(line.split(separator: "|")[0])
            for match in pattern.matches(in: firstCell, range: NSRange(firstCell.startIndex..., in: firstCell)) {
                let method = String(firstCell[Range(match.range(at: 1), in: firstCell)!])
                var path = String(firstCell[Range(match.range(at: 2), in: firstCell)!])
                path = path.replacingOccurrences(of: "<Model>", with: "{model}").replacingOccurrences(of: "<version>", with: "{version}")
                if path.count > 1, path.hasSuffix("/") { path.removeLast() }
                listed.insert("\(method) \(path)")
            }
        }
        let routes = Set(
            RouteTable(prefix: "/$baseUrl").routes.flatMap { route in
                route.methods.filter { $0 != .head }.map { "\($0.rawValue) \(route.path)" }
            })
        #expect(
            listed == routes,
            "docs/http-api.md lacks \(routes.subtracting(listed).sorted()); it lists \(listed.subtracting(routes).sorted()), which no route is")
    }
}
