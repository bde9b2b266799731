import Foundation
import ServingCore

/// Copies a model version into its own read-only folder, which is what the build and `init(path:)` see.
///
/// The exported folder never changes once written: the working tree changing, or the next version being
/// exported, never touches the files of a version that is loaded.
public struct VersionExporter: Sendable {
    /// `STATE_DIR/versions`.
    public let root: String
    /// The largest total size of a version's files (`MAX_MODEL_BYTES`).
    public let maxModelBytes: Int

    public init(stateDirectory: String, maxModelBytes: Int = 1 << 30) {
        self.root = (stateDirectory as NSString).appendingPathComponent("versions")
        self.maxModelBytes = maxModelBytes
    }

    public func exportedPath(for folder: ModelFolder) -> String {
        (root as NSString).appendingPathComponent("\(folder.name)/\(folder.version)")
    }

    /// Exports a folder's files; reuses an earlier export of the same version.
    public func export(_ folder: ModelFolder) throws -> String {
        let destination = exportedPath(for: folder)
        let manager = FileManager.default
        // Checked before an earlier export is reused too: the limit holds for every version that serves.
        let files = try FolderDigest.files(in: folder.sourcePath)
        var total = 0
        for relative in files {
            let size = (try manager.attributesOfItem(atPath: (folder.sourcePath as NSString).appendingPathComponent(relative))[.size] as? Int) ?? 0
            total += size
            guard total <= maxModelBytes else {
                throw SourceError(
                    "the folder's files are larger than MAX_MODEL_BYTES (\(maxModelBytes) bytes; '\(relative)' alone is \(size)); "
                        + "keep large artifacts out of the models folder or raise MAX_MODEL_BYTES"
                )
            }
        }
        if manager.fileExists(atPath: destination) { return destination }
        let staging = destination + ".staging-\(UUID().uuidString)"
        try manager.createDirectory(atPath: staging, withIntermediateDirectories: true)
        do {
            for relative in files {
                let target = (staging as NSString).appendingPathComponent(relative)
                try manager.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try manager.copyItem(atPath: (folder.sourcePath as NSString).appendingPathComponent(relative), toPath: target)
            }
            let exportedVersion = try FolderDigest.version(ofFolder: staging)
            guard exportedVersion == folder.version else {
                throw SourceError("\(folder.name) changed while it was being exported; the next sync picks up the new content")
            }
            try Self.makeReadOnly(staging)
            try manager.moveItem(atPath: staging, toPath: destination)
        } catch {
            try? manager.removeItem(atPath: staging)
            if manager.fileExists(atPath: destination) { return destination }
            throw error
        }
        return destination
    }

    /// Files 0444 and folders 0555, so a model cannot write into its own version.
    static func makeReadOnly(_ path: String) throws {
        let manager = FileManager.default
        guard let enumerator = manager.enumerator(atPath: path) else { return }
        var folders: [String] = [path]
        for case let relative as String in enumerator {
            let full = (path as NSString).appendingPathComponent(relative)
            if LocalModelSource.isDirectory(full) {
                folders.append(full)
            } else {
                try manager.setAttributes([.posixPermissions: 0o444], ofItemAtPath: full)
            }
        }
        for folder in folders.reversed() {
            try manager.setAttributes([.posixPermissions: 0o555], ofItemAtPath: folder)
        }
    }
}
