import AutoServeModel
import Foundation
import Testing

@testable import DriftReport

/// The CSV reader against RFC 4180 and the files spreadsheets and pandas write (docs/operations.md, "Scoring a file").
struct CSVTests {
    static func read(_ text: String, suffix: String = ".csv") throws(DriftInputError) -> [[String: JSON]] {
        let path = "\(NSTemporaryDirectory())csv-\(UUID().uuidString)\(suffix)"
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try RowFile.read(path, model: nil, for: .scoring).rows
    }

    static func failure(_ text: String) -> String {
        do {
            _ = try read(text)
            return "read"
        } catch {
            // Without the temporary path: "<path>:<line>: …" → "<line>: …".
            return String(error.description.drop { $0 != ":" }.dropFirst())
        }
    }

    @Test func aQuotedCellHoldsCommasQuotesAndLineBreaks() throws {
        let rows = try Self.read("name,note,n\r\n\"Smith, J\",\"said \"\"hi\"\"\nthen left\",2\r\n")
        #expect(rows == [["name": .string("Smith, J"), "note": .string("said \"hi\"\nthen left"), "n": .number(2)]])
    }

    @Test func aByteOrderMarkIsNotPartOfTheFirstName() throws {
        #expect(try Self.read("\u{FEFF}sepal_length,b\n5.1,2\n") == [["sepal_length": .number(5.1), "b": .number(2)]])
        #expect(try Self.read("\u{FEFF}{\"a\": 1}\n", suffix: ".jsonl") == [["a": .number(1)]])
    }

    @Test func aQuotedCellIsTextAndAnUnquotedNumberANumber() throws {
        let rows = try Self.read("id,code,flag,empty,missing\n\"00123\",00123,true,,nan\n\"\",\"true\",false,\"\",NaN\n")
        #expect(rows == [["id": .string("00123"), "code": .number(123), "flag": .bool(true)], ["code": .string("true"), "flag": .bool(false)]])
    }

    @Test func badFilesSayWhatAndWhere() {
        #expect(Self.failure("a,b\n1,inf\n") == "2: b is inf, not a finite number (JSON has none); leave the cell empty for a missing value")
        #expect(Self.failure("a,b,a\n1,2,3\n") == "1: the header names 'a' twice")
        #expect(Self.failure("a,,c\n1,2,3\n") == "1: the header has an empty name; name every column")
        #expect(Self.failure("a,b\n\n1,2\n\n3\n") == "5: 1 cells where the header names 2", "blank lines count")
        #expect(Self.failure("a,b\n\"x\ny\",1\n2\n") == "4: 1 cells where the header names 2", "a quoted line break counts")
        #expect(Self.failure("a,b\n1,2\n\"open,3\n4,5\n") == "3: a quoted cell is not closed (a \" opens it on this line and none ends it)")
        #expect(Self.failure("") == " empty; a CSV file needs a header line naming the features")
    }

    @Test func aLongFileIsReadInOnePass() throws {
        let body = String(repeating: "5.1,3.5,\"setosa, probably\"\n", count: 200_000)
        let started = ContinuousClock.now
        let rows = try Self.read("a,b,c\n" + body)
        #expect(rows.count == 200_000 && rows[199_999]["c"] == .string("setosa, probably"))
        #expect(ContinuousClock.now - started < .seconds(60), "linear: \(ContinuousClock.now - started)")
    }
}
