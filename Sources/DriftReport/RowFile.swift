public import AutoServeModel
import Foundation
import ServingCore

/// Rows read from an inference log, a JSON Lines file of row objects, or a CSV file whose header names the features:
/// one side of a drift report (docs/operations.md, "Drift reports"), or the input of `autoserve score` (docs/operations.md, "Scoring a file").
public struct RowFile: Sendable {
    /// One row: its features (the variables, and the model's numeric outputs as `output.<name>`).
    public var rows: [[String: JSON]] = []
    /// Lines that were not rows of the model asked for (another model, an error answer).
    public var ignored = 0

    public init(rows: [[String: JSON]], ignored: Int = 0) {
        self.rows = rows
        self.ignored = ignored
    }

    /// What the rows are read for.
    public enum Use: Sendable {
        /// A drift report: an inference log line counts when its answer was a 200, with its numeric outputs as
        /// `output.<name>` features.
        case drift
        /// Scoring again: an inference log line counts whatever its answer, with its variables only.
        case scoring
    }

    /// Reads `path`: CSV when its name ends in `.csv`, else JSON Lines. An inference log line contributes its
    /// `variables` (and for `.drift` its numeric `output` members) when `model` is `nil` or names it; a JSON line
    /// `{"variables": {...}}` (a request body) contributes its variables.
    public static func read(_ path: String, model: String?, for use: Use = .drift) throws(DriftInputError) -> RowFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DriftInputError("\(path): cannot read the file; check the path")
        }
        // A UTF-8 byte order mark (as spreadsheet programs write) is not part of the first name or line.
        let bytes = data.starts(with: [0xEF, 0xBB, 0xBF]) ? data.dropFirst(3) : data[...]
        if path.lowercased().hasSuffix(".csv") { return try csv(Array(bytes), path: path) }
        return try jsonLines(String(decoding: bytes, as: UTF8.self), path: path, model: model, use: use)
    }

    static func jsonLines(_ text: String, path: String, model: String?, use: Use = .drift) throws(DriftInputError) -> RowFile {
        var file = RowFile(rows: [])
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let value: JSON
            do {
                value = try JSONParser.parse(Array(trimmed.utf8))
            } catch {
                throw DriftInputError("\(path):\(index + 1): not a JSON line: \(error)")
            }
            guard case .object(let object) = value else {
                throw DriftInputError("\(path):\(index + 1): a line must be a JSON object (a row, or an inference log line)")
            }
            if case .object(let variables)? = object["variables"], object["request_id"] != nil {
                // An inference log line.
                if let model, object["model"]?.string != model {
                    file.ignored += 1
                    continue
                }
                guard use == .scoring || object["status"] == .number(200) else {
                    file.ignored += 1
                    continue
                }
                var row = variables
                if use == .drift, case .object(let output)? = object["output"] {
                    for (name, value) in output where value.double != nil { row["output.\(name)"] = value }
                }
                file.rows.append(row)
            } else if object.count == 1, case .object(let variables)? = object["variables"] {
                file.rows.append(variables)
            } else {
                file.rows.append(object)
            }
        }
        return file
    }

    /// A header of feature names, then one row per record, as RFC 4180 has them: cells separated by commas, records by
    /// line breaks (LF or CRLF), a quoted cell (`"a, b"`, `""` for a quote) may hold commas and line breaks. An unquoted
    /// cell that reads as a number is a number, `true` and `false` are booleans, an empty cell (or `nan`, as pandas may
    /// write a missing value) is missing; a quoted cell is text as it is (`"00123"` stays a string). Errors name the line
    /// a record starts on.
    static func csv(_ bytes: [UInt8], path: String) throws(DriftInputError) -> RowFile {
        var records = try CSVRecords.read(bytes, path: path)[...]
        guard let header = records.popFirst() else {
            throw DriftInputError("\(path): empty; a CSV file needs a header line naming the features")
        }
        let names = header.cells.map(\.text)
        var seen = Set<String>()
        for name in names {
            guard !name.isEmpty else { throw DriftInputError("\(path):\(header.line): the header has an empty name; name every column") }
            guard seen.insert(name).inserted else { throw DriftInputError("\(path):\(header.line): the header names '\(name)' twice") }
        }
        var file = RowFile(rows: [])
        file.rows.reserveCapacity(records.count)
        for record in records {
            guard record.cells.count == names.count else {
                throw DriftInputError("\(path):\(record.line): \(record.cells.count) cells where the header names \(names.count)")
            }
            var row: [String: JSON] = [:]
            for (name, cell) in zip(names, record.cells) {
                if cell.quoted {
                    if !cell.text.isEmpty { row[name] = .string(cell.text) }
                    continue
                }
                let text = cell.text
                if text.isEmpty || text == "nan" || text == "NaN" { continue }
                if text == "true" || text == "false" {
                    row[name] = .bool(text == "true")
                } else if let number = Double(text) {
                    guard number.isFinite else {
                        throw DriftInputError(
                            "\(path):\(record.line): \(name) is \(text), not a finite number (JSON has none); leave the cell empty for a missing value")
                    }
                    row[name] = .number(number)
                } else {
                    row[name] = .string(text)
                }
            }
            file.rows.append(row)
        }
        return file
    }
}

/// The records of a CSV file (RFC 4180), read byte by byte in one pass: what a cell holds, whether it was quoted,
/// and the line each record starts on. Blank lines are skipped (and counted).
enum CSVRecords {
    struct Cell {
        var text: String
        var quoted: Bool
    }

    struct Record {
        var line: Int
        var cells: [Cell]
    }

    static func read(_ bytes: [UInt8], path: String) throws(DriftInputError) -> [Record] {
        let quote = UInt8(ascii: "\"")
        let comma = UInt8(ascii: ",")
        let newline = UInt8(ascii: "\n")
        let carriage = UInt8(ascii: "\r")
        var records: [Record] = []
        var cells: [Cell] = []
        var cell: [UInt8] = []
        var quoted = false
        var inQuotes = false
        var line = 1
        var recordLine = 1
        var quoteLine = 1
        func finishCell() {
            let text = String(decoding: cell, as: UTF8.self)
            cells.append(Cell(text: quoted ? text : text.trimmingCharacters(in: .whitespaces), quoted: quoted))
            cell.removeAll(keepingCapacity: true)
            quoted = false
        }
        func finishRecord() {
            finishCell()
            // A blank line is one unquoted empty cell: no record.
            if !(cells.count == 1 && !cells[0].quoted && cells[0].text.isEmpty) { records.append(Record(line: recordLine, cells: cells)) }
            cells = []
        }
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if inQuotes {
                if byte == quote {
                    if index < bytes.count, bytes[index] == quote {
                        cell.append(quote)
                        index += 1
                    } else {
                        inQuotes = false
                    }
                } else {
                    if byte == newline { line += 1 }
                    cell.append(byte)
                }
                continue
            }
            switch byte {
            case quote where !quoted && cell.allSatisfy({ $0 == 0x20 || $0 == 0x09 }):
                cell.removeAll(keepingCapacity: true)
                quoted = true
                inQuotes = true
                quoteLine = line
            case comma:
                finishCell()
            case newline:
                finishRecord()
                line += 1
                recordLine = line
            case carriage:
                // CRLF ends a record at its LF; a lone CR (old Mac files) ends one itself.
                if index < bytes.count, bytes[index] == newline { break }
                finishRecord()
                line += 1
                recordLine = line
            default:
                // After a closing quote only spaces belong to the cell's end; anything else is kept, as readers do.
                if !(quoted && (byte == 0x20 || byte == 0x09)) { cell.append(byte) }
            }
        }
        guard !inQuotes else {
            throw DriftInputError("\(path):\(quoteLine): a quoted cell is not closed (a \" opens it on this line and none ends it)")
        }
        finishRecord()
        return records
    }
}

/// A file `autoserve drift` cannot use: the message names the file, the line and what is wrong.
public struct DriftInputError: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
