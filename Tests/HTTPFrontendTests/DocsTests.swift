import Foundation
import Testing

/// The docs as entry points: every link between the README and `docs/` reaches a file and a heading there, and every
/// section the code cites (`(docs/http-api.md, "HTTP API")`) exists.
struct DocsTests {
    static let repository = ErrorTableTests.repository

    /// The documents: README.md and every page of docs/.
    static func documents() throws -> [String: String] {
        var documents = ["README.md": try String(contentsOfFile: "\(repository)/README.md", encoding: .utf8)]
        for name in try FileManager.default.contentsOfDirectory(atPath: "\(repository)/docs") where name.hasSuffix(".md") {
            documents["docs/\(name)"] = try String(contentsOfFile: "\(repository)/docs/\(name)", encoding: .utf8)
        }
        return documents
    }

    /// A document's headings, outside code blocks.
    static func headings(_ text: String) -> [String] {
        var inCode = false
        var headings: [String] = []
        for line in text.components(separatedBy: "\n") {
            if line.hasPrefix("```") { inCode.toggle() }
            if !inCode, line.hasPrefix("#") { headings.append(line.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces)) }
        }
        return headings
    }

    /// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes.
    static func anchor(_ heading: String) -> String {
        String(heading.lowercased().filter { $0.isLetter || $0.isNumber || $0 == " " || $0 == "-" || $0 == "_" }.map { $0 == " " ? "-" : $0 })
    }

    @Test func everyLinkReachesAFileAndAHeading() throws {
        let documents = try Self.documents()
        #expect(documents.count >= 8, "the docs: \(documents.keys.sorted())")
        let link = try NSRegularExpression(pattern: #"\]\(([^)#\s]*)(#[^)\s]*)?\)"#)
        for (path, text) in documents {
            for match in link.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                let file = String(text[Range(match.range(at: 1), in: text)!])
                guard !file.hasPrefix("http") else { continue }
                let target =
                    file.isEmpty
                    ? path
                    : URL(fileURLWithPath: "\(Self.repository)/\(path)").deletingLastPathComponent().appendingPathComponent(file).standardized.path
                        .replacingOccurrences(of: "\(Self.repository)/", with: "")
                #expect(FileManager.default.fileExists(atPath: "\(Self.repository)/\(target)"), "\(path) links to \(file), which is missing")
                guard let range = Range(match.range(at: 2), in: text), let document = documents[target] else { continue }
                let anchor = String(text[range].dropFirst())
                #expect(Self.headings(document).map(Self.anchor).contains(anchor), "\(path) links to \(target)#\(anchor), which has no such heading")
            }
        }
    }

    @Test func everyCitedSectionExists() throws {
        let documents = try Self.documents()
        let citation = try NSRegularExpression(pattern: #"(README|docs/[a-z-]+\.md)(?:'s)?,? "([^"]+)""#)
        var cited = 0
        for folder in ["Sources", "Tests", "fuzz"] {
            let files = FileManager.default.enumerator(atPath: "\(Self.repository)/\(folder)")!
            while let file = files.nextObject() as? String {
                guard file.hasSuffix(".swift") || file.hasSuffix(".py") else { continue }
                let source = try String(contentsOfFile: "\(Self.repository)/\(folder)/\(file)", encoding: .utf8)
                // A citation may wrap onto the next comment line.
                let text = source.replacingOccurrences(of: #"\n\s*(///|//|#) "#, with: " ", options: .regularExpression)
                for match in citation.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    var document = String(text[Range(match.range(at: 1), in: text)!])
                    if document == "README" { document = "README.md" }
                    let section = String(text[Range(match.range(at: 2), in: text)!])
                    guard let headings = documents[document].map(Self.headings) else {
                        Issue.record("\(folder)/\(file) cites \(document), which does not exist")
                        continue
                    }
                    cited += 1
                    #expect(headings.contains { $0.hasPrefix(section) }, "\(folder)/\(file) cites \(document), \"\(section)\", which has no such heading")
                }
            }
        }
        #expect(cited >= 50, "the scan found \(cited) citations")
    }
}
