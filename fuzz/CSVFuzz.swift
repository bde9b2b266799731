// libFuzzer target: the CSV reader of `autoserve score` and `autoserve drift` (`CSVRecords`, compiled in with this file
// by fuzz/run.sh, with RowFile).
//
// The oracles:
// - any bytes end in records or a `DriftInputError`, never a trap, in time linear in the input;
// - round trip: the input read as a table (cells split at 0x00, records at 0x01), written with RFC 4180's quoting
//   (every cell quoted, quotes doubled, CRLF or LF between records), reads back as the same cells, each quoted,
//   on the line where its record starts.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCSV(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    _ = try? CSVRecords.read(bytes, path: "fuzz")
    _ = try? RowFile.csv(bytes, path: "fuzz")

    // Cells as valid UTF-8 (what the reader gives back), written byte by byte: a quote followed by a combining mark is
    // one Character, which String's replacing would not double.
    let table = bytes.split(separator: 0x01, omittingEmptySubsequences: false).map { record in
        record.split(separator: 0x00, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }
    let lineBreak: [UInt8] = bytes.first.map { $0 & 1 == 0 } ?? true ? [0x0D, 0x0A] : [0x0A]
    var written: [UInt8] = []
    var lines: [Int] = []
    var line = 1
    for record in table {
        lines.append(line)
        for (index, cell) in record.enumerated() {
            if index > 0 { written.append(UInt8(ascii: ",")) }
            written.append(UInt8(ascii: "\""))
            for byte in cell.utf8 { written += byte == UInt8(ascii: "\"") ? [byte, byte] : [byte] }
            written.append(UInt8(ascii: "\""))
        }
        written += lineBreak
        line += 1 + record.reduce(0) { $0 + $1.utf8.filter { $0 == 0x0A }.count }
    }
    let text = String(decoding: written, as: UTF8.self)
    guard let records = try? CSVRecords.read(written, path: "fuzz") else { fail("a table written with RFC 4180's quoting does not read back", text) }
    guard records.count == table.count else { fail("\(table.count) records written, \(records.count) read", text) }
    for (index, (record, written)) in zip(records, table).enumerated() {
        guard record.cells.map(\.text) == written, record.cells.allSatisfy(\.quoted) else { fail("record \(index) reads back as \(record.cells)", text) }
        guard record.line == lines[index] else { fail("record \(index) starts on line \(lines[index]), read as \(record.line)", text) }
    }
    return 0
}

func fail(_ reason: String, _ text: String) -> Never {
    fatalError("FUZZ FAILURE: \(reason): \(text.debugDescription.prefix(400))")
}
