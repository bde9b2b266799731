public import AutoServeModel
import Foundation
import ServingCore

/// Rows read from an inference log, a JSON Lines file of row objects, or a CSV file whose header names the features:
/// one side of a drift report (README, "Drift reports"), or the input of `autoserve score` (README, "Scoring a file").
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
        let text = String(decoding: data, as: UTF8.self)
        return path.lowercased().hasSuffix(".csv") ? try csv(text, path: path) : try jsonLines(text, path: path, model: model, use: use)
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

    /// A header of feature names, then one row per line; a cell that reads as a number is a number, `true` and
    /// `false` are booleans, an empty cell (or `nan`, as pandas may write a missing value) is missing. Quotes (`"a, b"`, `""` for a quote) as RFC 4180 has them.
    static func csv(_ text: String, path: String) throws(DriftInputError) -> RowFile {
        var lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map(String.init).filter { !$0.isEmpty }
        guard !lines.isEmpty else { throw DriftInputError("\(path): empty; a CSV file needs a header line naming the features") }
        let header = try cells(lines.removeFirst(), path: path, line: 1)
        var file = RowFile(rows: [])
        for (index, line) in lines.enumerated() {
            let values = try cells(line, path: path, line: index + 2)
            guard values.count == header.count else {
                throw DriftInputError("\(path):\(index + 2): \(values.count) cells where the header names \(header.count)")
            }
            var row: [String: JSON] = [:]
            for (name, cell) in zip(header, values) where !cell.isEmpty {
                if let number = Double(cell) {
                    if number.isFinite { row[name] = .number(number) }
                } else {
                    row[name] = cell == "true" ? .bool(true) : cell == "false" ? .bool(false) : .string(cell)
                }
            }
            file.rows.append(row)
        }
        return file
    }

    static func cells(_ line: String, path: String, line number: Int) throws(DriftInputError) -> [String] {
        var cells: [String] = []
        var cell = ""
        var quoted = false
        var characters = Array(line)[...]
        while let character = characters.popFirst() {
            if quoted {
                if character == "\"" {
                    if characters.first == "\"" {
                        cell.append("\"")
                        characters.removeFirst()
                    } else {
                        quoted = false
                    }
                } else {
                    cell.append(character)
                }
            } else if character == "\"" {
                quoted = true
            } else if character == "," {
                cells.append(cell)
                cell = ""
            } else {
                cell.append(character)
            }
        }
        guard !quoted else { throw DriftInputError("\(path):\(number): a quoted cell is not closed") }
        cells.append(cell)
        return cells.map { $0.trimmingCharacters(in: .whitespaces) }
    }
}

/// A file `autoserve drift` cannot use: the message names the file, the line and what is wrong.
public struct DriftInputError: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
