import Crypto
import Foundation
import ServingCore

/// Serves the model folders of a git repository's branch (`MODELS_REPO`, `MODELS_BRANCH`).
///
/// The first sync clones (bare) into `STATE_DIR/repos/<hash of the URL>`, and a restart reuses that clone;
/// every sync fetches the branch and reads its tip's tree. A model's version is its folder's tree id, so a
/// folder that did not change keeps its version and is never rebuilt. A failed clone or fetch throws and
/// changes nothing on disk that a served version uses: exports live apart from the clone.
public struct GitModelSource: ModelSourceProvider {
    public let url: String
    public let branch: String
    public let stateDirectory: String
    /// The largest total size of a version's files (`MAX_MODEL_BYTES`).
    public let maxModelBytes: Int
    /// `MODELS_REPO_ALLOWED_SIGNERS`: when set, a commit serves only if an SSH key of this file signed it.
    public let allowedSigners: String?
    let credentials: GitCredentials

    /// `url` is `MODELS_REPO` as given; credentials written into it are taken out of the URL that libgit2
    /// stores and used like `GIT_USERNAME`/`GIT_TOKEN` (which win when they are set too).
    public init(
        url: String, branch: String, stateDirectory: String, username: String?, token: String?, sshKeyPath: String?, maxModelBytes: Int = 1 << 30,
        allowedSigners: String? = nil
    ) {
        let remote = RemoteURL(url)
        self.allowedSigners = allowedSigners
        self.maxModelBytes = maxModelBytes
        self.url = remote.url
        self.branch = branch
        self.stateDirectory = stateDirectory
        self.credentials = GitCredentials(
            username: username ?? remote.username, token: token ?? remote.password, sshKeyPath: sshKeyPath,
            hostKeyPins: (stateDirectory as NSString).appendingPathComponent("ssh_known_hosts")
        )
    }

    /// The URL without any user information, for logs and the index.
    public var displayName: String { "\(RemoteURL.redact(url)) (\(branch))" }

    /// A message with URLs' user information and the token itself removed, wherever they appear in it.
    func scrub(_ text: String) -> String {
        var text = RemoteURL.redact(text)
        if let token = credentials.token, token.count >= 4 { text = text.replacingOccurrences(of: token, with: "<redacted>") }
        return text
    }

    /// The clone's folder: one per repository URL, so changing `MODELS_REPO` starts a fresh clone.
    var clonePath: String {
        let digest = SHA256.hash(data: Data(url.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
        return (stateDirectory as NSString).appendingPathComponent("repos/\(digest)")
    }

    public func sync() async throws(SourceError) -> SourceSnapshot {
        let result = await BlockingCalls.run { () -> Result<SourceSnapshot, SourceError> in
            do {
                var notices: [String] = []
                let repository = try openOrClone(notices: &notices)
                let commit = try repository.tip(branch: branch)
                try checkSignature(of: commit, in: repository)
                var result = snapshot(try repository.folders(atCommit: commit), commit: commit)
                result.notices = notices
                return .success(result)
            } catch let error as GitError {
                return .failure(SourceError(scrub(error.message)))
            } catch let error as SourceError {
                return .failure(SourceError(scrub(error.message)))
            } catch {
                return .failure(SourceError(scrub("\(error)")))
            }
        }
        return try result.get()
    }

    /// With `MODELS_REPO_ALLOWED_SIGNERS`, refuses a commit that no allowed key signed (docs/git-sync.md, "Signed
    /// commits"): the sync fails, naming the commit, the key and why, and the commit serving now stays.
    func checkSignature(of commit: String, in repository: GitRepository) throws {
        guard let allowedSigners else { return }
        let signers = try AllowedSigners.load(allowedSigners)
        let signed = try repository.signature(ofCommit: commit)
        if case .refused(let reason, _) = CommitSignature.verify(signed?.signature, payload: signed?.payload ?? [], signers: signers) {
            throw SourceError("commit \(commit.prefix(12)) of \(branch) is not served: \(reason)")
        }
    }

    /// Opens the clone and fetches, or clones when there is no usable clone yet.
    func openOrClone(notices: inout [String]) throws -> GitRepository {
        let manager = FileManager.default
        if manager.fileExists(atPath: clonePath), let repository = try? GitRepository.open(path: clonePath), (try? repository.originURL()) == url {
            try repository.fetch(branch: branch, credentials: credentials, notices: &notices)
            return repository
        }
        let staging = "\(clonePath).staging-\(UUID().uuidString)"
        try manager.createDirectory(atPath: (clonePath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try manager.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        defer { try? manager.removeItem(atPath: staging) }
        _ = try GitRepository.clone(url: url, into: staging, branch: branch, credentials: credentials, notices: &notices)
        try? manager.removeItem(atPath: clonePath)
        try manager.moveItem(atPath: staging, toPath: clonePath)
        return try GitRepository.open(path: clonePath)
    }

    func snapshot(_ folders: [(name: String, tree: String)], commit: String) -> SourceSnapshot {
        var models: [ModelFolder] = []
        var rejected: [RejectedFolder] = []
        for (name, tree) in folders.sorted(by: { $0.name < $1.name }) where !name.hasPrefix(".") && !name.hasPrefix("_") {
            do {
                models.append(ModelFolder(name: try ModelName(validating: name), version: tree, sourcePath: clonePath))
            } catch {
                rejected.append(RejectedFolder(folderName: name, diagnostic: Diagnostic(file: name, message: error.description)))
            }
        }
        return SourceSnapshot(models: models, rejected: rejected, commit: commit)
    }

    /// Writes the folder's tree (its version) to `STATE_DIR/versions/<Model>/<tree id>`, read-only.
    public func export(_ folder: ModelFolder) async throws -> String {
        let exporter = VersionExporter(stateDirectory: stateDirectory)
        let destination = exporter.exportedPath(for: folder)
        let clonePath = self.clonePath
        let maxModelBytes = self.maxModelBytes
        let result = await BlockingCalls.run { () -> Result<String, any Error> in
            let staging = destination + ".staging-\(UUID().uuidString)"
            do {
                let repository = try GitRepository.open(path: clonePath)
                // Checked before an earlier export is reused too: the limit holds for every version that serves.
                try repository.check(tree: folder.version, maxBytes: maxModelBytes)
                if FileManager.default.fileExists(atPath: destination) { return .success(destination) }
                try repository.export(tree: folder.version, to: staging)
                try VersionExporter.makeReadOnly(staging)
                try FileManager.default.moveItem(atPath: staging, toPath: destination)
                return .success(destination)
            } catch {
                try? FileManager.default.removeItem(atPath: staging)
                if FileManager.default.fileExists(atPath: destination) { return .success(destination) }
                return .failure(SourceError(scrub("\(error)")))
            }
        }
        return try result.get()
    }
}
