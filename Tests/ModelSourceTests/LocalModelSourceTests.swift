import Foundation
import ServingCore
import Testing

@testable import ModelSource

struct LocalModelSourceTests {
    func makeFolder() throws -> String {
        let root = NSTemporaryDirectory() + "autoserve-source-\(UUID().uuidString)"
        let manager = FileManager.default
        for path in ["Iris/data", "Churn", ".git", "_drafts", "1bad", "all"] {
            try manager.createDirectory(atPath: "\(root)/\(path)", withIntermediateDirectories: true)
        }
        try "struct Iris {}".write(toFile: "\(root)/Iris/etls.swift", atomically: true, encoding: .utf8)
        try "[1, 2]".write(toFile: "\(root)/Iris/data/weights.json", atomically: true, encoding: .utf8)
        try "struct Churn {}".write(toFile: "\(root)/Churn/etls.swift", atomically: true, encoding: .utf8)
        try "# models".write(toFile: "\(root)/README.md", atomically: true, encoding: .utf8)
        return root
    }

    @Test func listsModelFoldersAndReportsBadNames() throws {
        let root = try makeFolder()
        let snapshot = try LocalModelSource(directory: root, stateDirectory: root + "-state").scan()
        #expect(snapshot.models.map(\.name.rawValue) == ["Churn", "Iris"])
        #expect(Set(snapshot.rejected.map(\.folderName)) == ["1bad", "all"])
        #expect(snapshot.rejected.first { $0.folderName == "all" }?.diagnostic.message.contains("reserved") == true)
    }

    @Test func aVersionChangesWithContentOnly() throws {
        let root = try makeFolder()
        let source = LocalModelSource(directory: root, stateDirectory: root + "-state")
        let first = try source.scan().models.first { $0.name.rawValue == "Iris" }!.version
        #expect(try source.scan().models.first { $0.name.rawValue == "Iris" }!.version == first)
        try "[1, 3]".write(toFile: "\(root)/Iris/data/weights.json", atomically: true, encoding: .utf8)
        let second = try source.scan().models.first { $0.name.rawValue == "Iris" }!.version
        #expect(second != first)
        #expect(try source.scan().models.first { $0.name.rawValue == "Churn" }!.version == (try FolderDigest.version(ofFolder: "\(root)/Churn")))
    }

    @Test func anExportIsAReadOnlyCopyReusedForTheSameVersion() async throws {
        let root = try makeFolder()
        let source = LocalModelSource(directory: root, stateDirectory: root + "-state")
        let iris = try source.scan().models.first { $0.name.rawValue == "Iris" }!
        let exported = try await source.export(iris)
        #expect(try FolderDigest.version(ofFolder: exported) == iris.version)
        let attributes = try FileManager.default.attributesOfItem(atPath: "\(exported)/data/weights.json")
        #expect((attributes[.posixPermissions] as? Int) == 0o444)
        try "changed".write(toFile: "\(root)/Iris/etls.swift", atomically: true, encoding: .utf8)
        #expect(try String(contentsOfFile: "\(exported)/etls.swift", encoding: .utf8) == "struct Iris {}")
        #expect(try await source.export(iris) == exported)
        await #expect(throws: (any Error).self) { try await source.export(iris.withVersion("0000")) }
    }

    @Test func aMissingFolderIsAnErrorNamingIt() {
        #expect {
            try LocalModelSource(directory: "/nonexistent/models", stateDirectory: "/tmp").scan()
        } throws: { error in
            (error as? SourceError)?.message.contains("/nonexistent/models") == true
        }
    }
}

extension ModelFolder {
    func withVersion(_ version: String) -> ModelFolder {
        ModelFolder(name: name, version: version, sourcePath: sourcePath)
    }
}
