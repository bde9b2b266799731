import Foundation
import Testing

@testable import ServingCore

/// An inference log line is one line of JSON whatever the body's whitespace, with the schema README documents.
@Suite struct InferenceRecordTests {
    @Test func aRecordIsOneLineOfJSON() throws {
        let record = InferenceRecord(
            time: Date(timeIntervalSince1970: 1_796_000_000.123_9), requestID: "id\"1", model: "Iris", version: "abc", commit: nil, route: .all,
            variables: Array("{\n  \"text\": \"line\\nbreak\",\r\n  \"n\": 1\n}".utf8), output: Array(#"{"class":"setosa"}"#.utf8), error: nil,
            status: 200, latency: .microseconds(1_234_567))
        var bytes: [UInt8] = []
        record.line(into: &bytes)
        #expect(bytes.last == 0x0A)
        #expect(bytes.dropLast().allSatisfy { $0 != 0x0A && $0 != 0x0D }, "one line")
        let line = try JSONParser.parse(Array(bytes.dropLast()))
        #expect(line["time"] == .string("2026-11-30T00:53:20.123Z"))
        #expect(line["request_id"] == .string("id\"1"))
        #expect(line["commit"] == .null)
        #expect(line["route"] == .string("all"))
        #expect(line["variables"]?["text"] == .string("line\nbreak"), "an escaped newline in a string is kept")
        #expect(line["variables"]?["n"] == .number(1))
        #expect(line["output"]?["class"] == .string("setosa"))
        #expect(line["latency_ms"] == .number(1234.567))
    }
}
