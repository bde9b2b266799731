import Foundation
import ServingCore
import Testing

/// The error table of docs/http-api.md ("HTTP API") lists every error code the server can send, with the status it sends it with:
/// the codes written in the sources (`code: "…"`) and every `PredictionFailure`'s.
struct ErrorTableTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// code → the statuses of its rows in the table.
    static func readmeTable() throws -> [String: Set<String>] {
        let readme = try String(contentsOfFile: "\(repository)/docs/http-api.md", encoding: .utf8)
        let lines = readme.components(separatedBy: "\n")
        let start = try #require(lines.firstIndex(of: "| status | code | when |"), "docs/http-api.md has no error table")
        var table: [String: Set<String>] = [:]
        for line in lines[(start + 2)...] {
            guard line.hasPrefix("|") else { break }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            for code in cells[2].split(separator: "`", omittingEmptySubsequences: false).enumerated().filter({ $0.offset % 2 == 1 }).map({ String($0.element) })
            {
                table[code, default: []].insert(cells[1])
            }
        }
        return table
    }

    /// code → the statuses the sources send it with.
    static func codesInTheSources() throws -> [String: Set<String>] {
        var codes: [String: Set<String>] = [:]
        let pattern = try NSRegularExpression(pattern: #"status: (\w+), code: "([a-z_]+)""#)
        let sources = FileManager.default.enumerator(atPath: "\(repository)/Sources")!
        while let path = sources.nextObject() as? String {
            guard path.hasSuffix(".swift") else { continue }
            let text = try String(contentsOfFile: "\(repository)/Sources/\(path)", encoding: .utf8)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                let status = String(text[Range(match.range(at: 1), in: text)!])
                let code = String(text[Range(match.range(at: 2), in: text)!])
                // A status computed at run time (`status: status`) is the errors' own (the table says which).
                codes[code, default: []].insert(Int(status) == nil ? "(the errors')" : status)
            }
        }
        for kind in PredictionFailure.Kind.allCases {
            let failure = PredictionFailure(kind, "")
            codes[failure.code, default: []].insert("\(failure.status)")
        }
        return codes
    }

    @Test func everyCodeTheServerSendsIsInTheTableWithItsStatus() throws {
        let table = try Self.readmeTable()
        let sent = try Self.codesInTheSources()
        #expect(sent.count >= 25, "the scan found the codes: \(sent.keys.sorted())")
        for (code, statuses) in sent.sorted(by: { $0.key < $1.key }) {
            #expect(table[code] != nil, "the error table of docs/http-api.md lacks \(code)")
            if let listed = table[code] {
                #expect(statuses.isSubset(of: listed), "\(code) is sent with \(statuses.sorted()), the table says \(listed.sorted())")
            }
        }
        for code in table.keys.sorted() { #expect(sent[code] != nil, "the error table lists \(code), which the server never sends") }
    }
}
