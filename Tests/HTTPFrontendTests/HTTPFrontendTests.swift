import ServingCore
import Testing

@testable import HTTPFrontend

struct RoutingTests {
    @Test(
        arguments: [
            ("/", "", ""), ("/Iris", "", "Iris"), ("/Iris/", "", "Iris"), ("/all", "", "all"), ("/Iris/x", "", nil),
            ("/api/v1", "/api/v1", ""), ("/api/v1/", "/api/v1", ""), ("/api/v1/Iris", "/api/v1", "Iris"), ("/Iris", "/api/v1", nil),
            ("/api/v1x/Iris", "/api/v1", nil), ("/api/v2/Iris", "/api/v1", nil),
        ] as [(String, String, String?)])
    func routesBelowThePrefix(path: String, prefix: String, route: String?) {
        #expect(ServeResponder.modelRoute(path, prefix: prefix) == route)
    }
}

struct RequestVariablesTests {
    func parse(_ body: String) -> Result<[UInt8], APIError> {
        Array(body.utf8).withUnsafeBytes { RequestVariables.parse($0) }
    }

    @Test func extractsTheVariablesBytes() throws {
        #expect(try parse(#"{"variables": {"a": 1}}"#).get() == Array(#"{"a": 1}"#.utf8))
        #expect(try parse("").get() == Array("{}".utf8))
        #expect(try parse(" \n\t").get() == Array("{}".utf8))
    }

    @Test(arguments: [
        ("nope", "invalid_json"), (#"{"variables": 1}"#, "invalid_variables"), (#"{}"#, "missing_variables"),
        (#"[]"#, "invalid_body"), (#""variables""#, "invalid_body"),
    ])
    func refusesWhatIsNotAVariablesObject(body: String, code: String) {
        guard case .failure(let error) = parse(body) else {
            Issue.record("accepted \(body)")
            return
        }
        #expect(error.code == code)
        #expect(error.status.code == 400)
    }

    @Test func errorBodiesHaveTheSpecShape() throws {
        let error = APIError(status: 404, code: "not_found", message: "no \"x\"")
        let body = try JSONParser.parse(error.bodyBytes)
        #expect(body == .object(["error": .object(["status": .number(404), "code": .string("not_found"), "message": .string("no \"x\"")])]))
    }
}
