import Crypto
import Foundation
import ServingCore

/// Serves a folder of model folders as it is on disk (`MODELS_DIR`, the mode without a repository).
///
/// A model's version is a SHA-256 of its files' relative paths and bytes, so an unchanged folder keeps its
/// version across scans and restarts and is never rebuilt.
public struct LocalModelSource: Sendable {
    public let directory: String
    /// Where exported versions go (`STATE_DIR`).
    public let stateDirectory: String
    /// The largest total size of a version's files (`MAX_MODEL_BYTES`).
    public let maxModelBytes: Int

    public init(directory: String, stateDirectory: String, maxModelBytes: Int = 1 << 30) {
        self.directory = directory
        self.stateDirectory = stateDirectory
        self.maxModelBytes = maxModelBytes
    }

    /// Lists the model folders with their versions; folders that break a naming rule are reported, not fatal.
    public func scan() throws(SourceError) -> SourceSnapshot {
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw SourceError("cannot read the models folder \(directory): \(error.localizedDescription); set MODELS_DIR to a folder of model folders")
        }
        var models: [ModelFolder] = []
        var rejected: [RejectedFolder] = []
        for entry in entries.sorted() where !entry.hasPrefix(".") && !entry.hasPrefix("_") {
            let path = (directory as NSString).appendingPathComponent(entry)
            guard Self.isDirectory(path) else { continue }
            do {
                let name = try ModelName(validating: entry)
                let version = try FolderDigest.version(ofFolder: path)
                models.append(ModelFolder(name: name, version: version, sourcePath: path))
            } catch let error as ModelNameError {
                rejected.append(RejectedFolder(folderName: entry, diagnostic: Diagnostic(file: entry, message: error.description)))
            } catch {
                rejected.append(RejectedFolder(folderName: entry, diagnostic: Diagnostic(file: entry, message: "cannot read the folder: \(error)")))
            }
        }
        return SourceSnapshot(models: models, rejected: rejected)
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}

/// The content hash of a folder: every regular file's relative path and bytes, in sorted order.
public enum FolderDigest {
    public static func version(ofFolder path: String) throws -> String {
        var hasher = SHA256()
        for relative in try files(in: path) {
            let data = try Data(contentsOf: URL(fileURLWithPath: (path as NSString).appendingPathComponent(relative)), options: .mappedIfSafe)
            hasher.update(data: Data(relative.utf8))
            hasher.update(data: Data([0]))
            hasher.update(data: Data(String(data.count).utf8))
            hasher.update(data: Data([0]))
            hasher.update(data: data)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The regular files below a folder, as sorted relative paths; hidden files and folders are left out.
    public static func files(in path: String) throws -> [String] {
        let root = URL(fileURLWithPath: path)
        guard
            let enumerator = FileManager.default.enumerator(
                at: root,
                includingPropertiesForKeys: [.isRegularFileKey, .isDirectoryKey],
                options: [.skipsHiddenFiles]
            )
        else { throw SourceError("cannot list \(path)") }
        var files: [String] = []
        let rootComponents = root.standardizedFileURL.resolvingSymlinksInPath().pathComponents.count
        for case let url as URL in enumerator {
            let values = try url.resourceValues(forKeys: [.isRegularFileKey])
            guard values.isRegularFile == true else { continue }
            let components = url.standardizedFileURL.resolvingSymlinksInPath().pathComponents
            files.append(components.dropFirst(rootComponents).joined(separator: "/"))
        }
        return files.sorted()
    }
}
