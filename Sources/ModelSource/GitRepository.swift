import CGitShims
import CLibGit2
import Foundation
import ServingCore

#if canImport(Glibc)
    import Glibc
#endif

/// libgit2, wrapped once: every `git_*` call of AutoServe is in this file, and every return code becomes a
/// `GitError` carrying libgit2's own message (with any credentials removed).
///
/// The clone is bare: AutoServe never checks out a working tree. It reads the tree of the branch tip straight
/// from the object database and exports each model folder's blobs to their own read-only folder. A
/// `GitRepository` is used from one thread at a time; libgit2 is thread-safe across separate repositories.
final class GitRepository {
    let pointer: OpaquePointer

    private init(_ pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        git_repository_free(pointer)
    }

    /// Initialises libgit2 once per process.
    static let initialized: Bool = {
        git_libgit2_init()
        _ = autoserve_git_disable_owner_validation()
        return true
    }()

    /// Clones `url` bare into `path`, fetching only `branch`.
    static func clone(url: String, into path: String, branch: String, credentials: GitCredentials, notices: inout [String]) throws(GitError) -> GitRepository {
        _ = initialized
        var options = git_clone_options()
        try check(git_clone_options_init(&options, UInt32(GIT_CLONE_OPTIONS_VERSION)), "prepare the clone")
        options.bare = 1
        let context = CredentialContext(credentials)
        let payload = Unmanaged.passRetained(context)
        defer { payload.release() }
        options.fetch_opts.callbacks.credentials = credentialCallback
        options.fetch_opts.callbacks.certificate_check = certificateCallback
        options.fetch_opts.callbacks.payload = payload.toOpaque()
        var repository: OpaquePointer?
        let code = branch.withCString { branchName in
            options.checkout_branch = branchName
            return git_clone(&repository, url, path, &options)
        }
        if let pinned = context.pinnedHostKey { notices.append("trusted a new SSH host key on first use: \(pinned)") }
        try check(code, "clone \(RemoteURL.redact(url)) (branch \(branch))", context: context)
        return GitRepository(repository!)
    }

    static func open(path: String) throws(GitError) -> GitRepository {
        _ = initialized
        var repository: OpaquePointer?
        try check(git_repository_open_bare(&repository, path), "open the clone at \(path)")
        return GitRepository(repository!)
    }

    /// The repository (a work tree's, or a bare one) that holds `path`, looked for from there upwards.
    static func discover(from path: String) throws(GitError) -> GitRepository {
        _ = initialized
        var repository: OpaquePointer?
        try check(git_repository_open_ext(&repository, path, 0, nil), "find a git repository at or above \(path)")
        return GitRepository(repository!)
    }

    /// The commit HEAD names.
    func head() throws(GitError) -> String {
        var oid = git_oid()
        try Self.check(git_reference_name_to_id(&oid, pointer, "HEAD"), "read HEAD")
        return Self.hex(oid)
    }

    /// The URL of `origin`, to notice that `MODELS_REPO` changed.
    func originURL() throws(GitError) -> String {
        var remote: OpaquePointer?
        try Self.check(git_remote_lookup(&remote, pointer, "origin"), "find the remote origin")
        defer { git_remote_free(remote) }
        return git_remote_url(remote).map { String(cString: $0) } ?? ""
    }

    /// Fetches `branch` from origin into `refs/remotes/origin/<branch>`; when nothing changed this is one
    /// round trip.
    func fetch(branch: String, credentials: GitCredentials, notices: inout [String]) throws(GitError) {
        var remote: OpaquePointer?
        try Self.check(git_remote_lookup(&remote, pointer, "origin"), "find the remote origin")
        defer { git_remote_free(remote) }
        var options = git_fetch_options()
        try Self.check(git_fetch_options_init(&options, UInt32(GIT_FETCH_OPTIONS_VERSION)), "prepare the fetch")
        options.prune = GIT_FETCH_PRUNE
        let context = CredentialContext(credentials)
        let payload = Unmanaged.passRetained(context)
        defer { payload.release() }
        options.callbacks.credentials = credentialCallback
        options.callbacks.certificate_check = certificateCallback
        options.callbacks.payload = payload.toOpaque()
        let refspec = "+refs/heads/\(branch):refs/remotes/origin/\(branch)"
        let code = refspec.withCString { refspecPointer -> Int32 in
            var strings: [UnsafeMutablePointer<CChar>?] = [UnsafeMutablePointer(mutating: refspecPointer)]
            return strings.withUnsafeMutableBufferPointer { buffer in
                var array = git_strarray(strings: buffer.baseAddress, count: 1)
                return git_remote_fetch(remote, &array, &options, "autoserve: fetch")
            }
        }
        let url = git_remote_url(remote).map { String(cString: $0) } ?? "origin"
        if let pinned = context.pinnedHostKey { notices.append("trusted a new SSH host key on first use: \(pinned)") }
        try Self.check(code, "fetch \(RemoteURL.redact(url)) (branch \(branch))", context: context)
        // A fetch of a branch the remote no longer has succeeds and fetches nothing; the tip would then fall
        // back to an older commit. The remote's list of references, kept from the fetch, tells.
        guard try Self.remoteAdvertises(remote!, "refs/heads/\(branch)") else {
            throw GitError(
                code: GIT_ENOTFOUND.rawValue,
                message: "the remote \(RemoteURL.redact(url)) no longer has branch \(branch); the models keep serving the last commit fetched. "
                    + "Push the branch again or set MODELS_BRANCH to one the remote has"
            )
        }
    }

    /// Whether the remote named `reference` in its list of references, as read by the last connection.
    private static func remoteAdvertises(_ remote: OpaquePointer, _ reference: String) throws(GitError) -> Bool {
        var heads: UnsafeMutablePointer<UnsafePointer<git_remote_head>?>?
        var count = 0
        try check(git_remote_ls(&heads, &count, remote), "list the remote's branches")
        for index in 0..<count {
            if let head = heads?[index], String(cString: head.pointee.name) == reference { return true }
        }
        return false
    }

    /// The commit at the tip of `branch` as last fetched (or as cloned).
    func tip(branch: String) throws(GitError) -> String {
        var oid = git_oid()
        var code = git_reference_name_to_id(&oid, pointer, "refs/remotes/origin/\(branch)")
        if code == GIT_ENOTFOUND.rawValue {
            code = git_reference_name_to_id(&oid, pointer, "refs/heads/\(branch)")
        }
        if code == GIT_ENOTFOUND.rawValue {
            throw GitError(code: code, message: "the repository has no branch \(branch); set MODELS_BRANCH to one of its branches")
        }
        try Self.check(code, "find branch \(branch)")
        return Self.hex(oid)
    }

    /// The folders at the root of a commit's tree: name and tree id (the folder's version).
    func folders(atCommit commit: String) throws(GitError) -> [(name: String, tree: String)] {
        let tree = try rootTree(ofCommit: commit)
        defer { git_tree_free(tree) }
        var folders: [(String, String)] = []
        for index in 0..<git_tree_entrycount(tree) {
            guard let entry = git_tree_entry_byindex(tree, index), git_tree_entry_type(entry) == GIT_OBJECT_TREE else { continue }
            folders.append((String(cString: git_tree_entry_name(entry)), Self.hex(git_tree_entry_id(entry).pointee)))
        }
        return folders
    }

    /// Writes every file of a tree below `path` (folders included); links and submodules are left out.
    ///
    /// The tree comes from a repository anyone may push to: `check(tree:maxBytes:)` runs first (names and
    /// sizes), and every target is checked again here to stay below `path`.
    func export(tree treeID: String, to path: String) throws(GitError) {
        var oid = git_oid()
        try Self.check(git_oid_fromstr(&oid, treeID), "read the tree id \(treeID)")
        var tree: OpaquePointer?
        try Self.check(git_tree_lookup(&tree, pointer, &oid), "find tree \(treeID)")
        defer { git_tree_free(tree) }
        let root = (path as NSString).standardizingPath
        do {
            try FileManager.default.createDirectory(atPath: (root as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        } catch {
            throw GitError(code: -1, message: "cannot create the folder of \(root): \(error.localizedDescription)")
        }
        try write(tree: tree!, to: root, root: root)
    }

    /// Checks a tree before anything of it is written: no entry may name `.`, `..` or `.git` or hold a `/` (git's
    /// object format allows such names; `git fsck` only warns), and the files together must fit in `maxBytes`
    /// (their sizes are read from the object headers, before any content is inflated).
    func check(tree treeID: String, maxBytes: Int) throws(GitError) {
        var oid = git_oid()
        try Self.check(git_oid_fromstr(&oid, treeID), "read the tree id \(treeID)")
        var tree: OpaquePointer?
        try Self.check(git_tree_lookup(&tree, pointer, &oid), "find tree \(treeID)")
        defer { git_tree_free(tree) }
        var odb: OpaquePointer?
        try Self.check(git_repository_odb(&odb, pointer), "open the object database")
        defer { git_odb_free(odb) }
        var total = 0
        try measure(tree: tree!, odb: odb!, under: "", total: &total, limit: maxBytes)
    }

    /// Adds up the sizes of a tree's files, refusing unsafe names and a total over `limit`.
    private func measure(tree: OpaquePointer, odb: OpaquePointer, under folder: String, total: inout Int, limit: Int) throws(GitError) {
        for index in 0..<git_tree_entrycount(tree) {
            guard let entry = git_tree_entry_byindex(tree, index) else { continue }
            let name = String(cString: git_tree_entry_name(entry))
            let shown = folder.isEmpty ? name : "\(folder)/\(name)"
            guard Self.isSafeEntryName(name) else {
                throw GitError(
                    code: -1,
                    message: "the folder holds an entry named '\(shown)', which would be written outside the version's folder; "
                        + "remove it from the repository (entries named ., .. or .git, or holding / are refused)"
                )
            }
            switch git_tree_entry_filemode(entry) {
            case GIT_FILEMODE_TREE:
                var child: OpaquePointer?
                try Self.check(git_tree_lookup(&child, pointer, git_tree_entry_id(entry)), "find folder \(shown)")
                defer { git_tree_free(child) }
                try measure(tree: child!, odb: odb, under: shown, total: &total, limit: limit)
            case GIT_FILEMODE_BLOB, GIT_FILEMODE_BLOB_EXECUTABLE:
                var size = 0
                var type = GIT_OBJECT_ANY
                try Self.check(git_odb_read_header(&size, &type, odb, git_tree_entry_id(entry)), "read the size of \(shown)")
                total += size
                guard total <= limit else {
                    throw GitError(
                        code: -1,
                        message: "the folder's files are larger than MAX_MODEL_BYTES (\(limit) bytes; '\(shown)' alone is \(size)); "
                            + "keep large artifacts out of the models repository or raise MAX_MODEL_BYTES"
                    )
                }
            default:
                continue
            }
        }
    }

    /// Whether a tree entry's name is one file or folder name: not `.`, `..` or `.git`, no `/`, no NUL.
    static func isSafeEntryName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && name.lowercased() != ".git" && !name.contains("/") && !name.contains("\0")
    }

    private func write(tree: OpaquePointer, to path: String, root: String) throws(GitError) {
        guard path == root || path.hasPrefix(root + "/") else {
            throw GitError(code: -1, message: "refused to write \(path): it is outside the version's folder \(root)")
        }
        guard Glibc.mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw GitError(code: -1, message: "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        for index in 0..<git_tree_entrycount(tree) {
            guard let entry = git_tree_entry_byindex(tree, index) else { continue }
            let name = String(cString: git_tree_entry_name(entry))
            let target = ((path as NSString).appendingPathComponent(name) as NSString).standardizingPath
            guard Self.isSafeEntryName(name), target.hasPrefix(root + "/") else {
                throw GitError(code: -1, message: "refused to write the entry '\(name)': it is outside the version's folder \(root)")
            }
            switch git_tree_entry_filemode(entry) {
            case GIT_FILEMODE_TREE:
                var child: OpaquePointer?
                try Self.check(git_tree_lookup(&child, pointer, git_tree_entry_id(entry)), "find folder \(name)")
                defer { git_tree_free(child) }
                try write(tree: child!, to: target, root: root)
            case GIT_FILEMODE_BLOB, GIT_FILEMODE_BLOB_EXECUTABLE:
                try writeBlob(git_tree_entry_id(entry), to: target, name: name)
            default:
                continue
            }
        }
    }

    /// Writes one file straight from libgit2's buffer (no copy of the content), created exclusively: an entry
    /// can never write through a file or link that is already there.
    private func writeBlob(_ id: UnsafePointer<git_oid>, to target: String, name: String) throws(GitError) {
        var blob: OpaquePointer?
        try Self.check(git_blob_lookup(&blob, pointer, id), "find file \(name)")
        defer { git_blob_free(blob) }
        let descriptor = Glibc.open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard descriptor >= 0 else { throw GitError(code: -1, message: "cannot write \(target): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(descriptor) }
        var content = git_blob_rawcontent(blob)
        var remaining = Int(git_blob_rawsize(blob))
        while remaining > 0, let chunk = content {
            let written = Glibc.write(descriptor, chunk, min(remaining, 1 << 20))
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { throw GitError(code: -1, message: "cannot write \(target): \(String(cString: strerror(errno)))") }
            remaining -= written
            content = UnsafeRawPointer(chunk + written)
        }
    }

    /// A commit's signature (its armored `gpgsig` header) and the bytes it signs (the commit without that header),
    /// or `nil` for an unsigned commit.
    func signature(ofCommit commit: String) throws(GitError) -> (signature: String, payload: [UInt8])? {
        var oid = git_oid()
        try Self.check(git_oid_fromstr(&oid, commit), "read the commit id \(commit)")
        var signature = git_buf()
        var payload = git_buf()
        defer {
            git_buf_dispose(&signature)
            git_buf_dispose(&payload)
        }
        let code = git_commit_extract_signature(&signature, &payload, pointer, &oid, nil)
        if code == GIT_ENOTFOUND.rawValue { return nil }
        try Self.check(code, "read the signature of commit \(commit)")
        let text = signature.ptr.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: signature.size), as: UTF8.self) } ?? ""
        let bytes = payload.ptr.map { Array(UnsafeRawBufferPointer(start: $0, count: payload.size)) } ?? []
        return (text, bytes)
    }

    private func rootTree(ofCommit commit: String) throws(GitError) -> OpaquePointer {
        var oid = git_oid()
        try Self.check(git_oid_fromstr(&oid, commit), "read the commit id \(commit)")
        var commitObject: OpaquePointer?
        try Self.check(git_commit_lookup(&commitObject, pointer, &oid), "find commit \(commit)")
        defer { git_commit_free(commitObject) }
        var tree: OpaquePointer?
        try Self.check(git_commit_tree(&tree, commitObject), "read the tree of commit \(commit)")
        return tree!
    }

    static func hex(_ oid: git_oid) -> String {
        var oid = oid
        var buffer = [CChar](repeating: 0, count: 41)
        git_oid_tostr(&buffer, 41, &oid)
        return String(decoding: buffer.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Turns a libgit2 return code into a `GitError` with libgit2's last message.
    static func check(_ code: Int32, _ action: String, context: CredentialContext? = nil) throws(GitError) {
        guard code < 0 else { return }
        var reason = git_error_last().flatMap { $0.pointee.message.map { String(cString: $0) } } ?? "error \(code)"
        if let context, let refusal = context.refusal { reason = refusal }
        throw GitError(code: code, message: RemoteURL.redact("cannot \(action): \(reason)"))
    }
}

/// What libgit2 may answer an authentication challenge with. Secrets never leave this struct except into
/// libgit2's credential object.
struct GitCredentials: Sendable {
    var username: String?
    var token: String?
    var sshKeyPath: String?
    /// The file of pinned SSH host keys (`host fingerprint` lines), `STATE_DIR/ssh_known_hosts`.
    var hostKeyPins: String?
}

/// The credential callback's state: which credentials it has offered, so a refused one is not retried forever.
final class CredentialContext {
    let credentials: GitCredentials
    var attempts = 0
    var refusal: String?
    /// Set when this operation pinned a new SSH host key, for the log.
    var pinnedHostKey: String?

    init(_ credentials: GitCredentials) {
        self.credentials = credentials
    }
}

/// Answers libgit2's authentication challenges from `GIT_TOKEN` / `GIT_USERNAME` or `GIT_SSH_KEY`.
private let credentialCallback: git_credential_acquire_cb = { out, _, usernameFromURL, allowedTypes, payload in
    let context = Unmanaged<CredentialContext>.fromOpaque(payload!).takeUnretainedValue()
    context.attempts += 1
    guard context.attempts == 1 else {
        context.refusal = "the remote refused the credentials (check GIT_TOKEN, GIT_USERNAME or GIT_SSH_KEY)"
        return GIT_EAUTH.rawValue
    }
    let credentials = context.credentials
    if allowedTypes & GIT_CREDENTIAL_USERNAME.rawValue != 0, let user = credentials.username {
        // libgit2 asks for the user name alone first when the URL names none, then asks again for the key.
        context.attempts -= 1
        return git_credential_username_new(out, user)
    }
    if allowedTypes & GIT_CREDENTIAL_SSH_KEY.rawValue != 0, let key = credentials.sshKeyPath {
        let user = usernameFromURL.map { String(cString: $0) } ?? credentials.username ?? "git"
        return git_credential_ssh_key_new(out, user, nil, key, nil)
    }
    if allowedTypes & GIT_CREDENTIAL_USERPASS_PLAINTEXT.rawValue != 0, let token = credentials.token {
        return git_credential_userpass_plaintext_new(out, credentials.username ?? "x-access-token", token)
    }
    context.refusal = "the remote asks for credentials and none are configured; set GIT_TOKEN (HTTPS) or GIT_SSH_KEY (SSH)"
    return GIT_EAUTH.rawValue
}

/// Verifies SSH host keys the way `StrictHostKeyChecking=accept-new` does: the first key seen for a host
/// is pinned in `STATE_DIR/ssh_known_hosts`, and a later, different key is refused. Operators who want strict
/// checking write the expected `host SHA256:…` line there before the first sync. TLS certificates keep
/// libgit2's own verification.
private let certificateCallback: git_transport_certificate_check_cb = { certificate, _, host, payload in
    guard let certificate, certificate.pointee.cert_type == GIT_CERT_HOSTKEY_LIBSSH2, let host else { return GIT_PASSTHROUGH.rawValue }
    let context = Unmanaged<CredentialContext>.fromOpaque(payload!).takeUnretainedValue()
    let hostKey = UnsafeRawPointer(certificate).assumingMemoryBound(to: git_cert_hostkey.self).pointee
    guard hostKey.type.rawValue & GIT_CERT_SSH_SHA256.rawValue != 0, let pins = context.credentials.hostKeyPins else {
        context.refusal = "the SSH server offered no SHA-256 host key fingerprint to verify"
        return GIT_ECERTIFICATE.rawValue
    }
    let digest = withUnsafeBytes(of: hostKey.hash_sha256) { Data($0) }
    let fingerprint = "SHA256:" + digest.base64EncodedString().replacingOccurrences(of: "=", with: "")
    let name = String(cString: host)
    let lines = ((try? String(contentsOfFile: pins, encoding: .utf8)) ?? "").split(separator: "\n")
    if let pinned = lines.first(where: { $0.split(separator: " ").first.map(String.init) == name }) {
        guard pinned.split(separator: " ").dropFirst().first.map(String.init) == fingerprint else {
            context.refusal =
                "the SSH host key of \(name) changed to \(fingerprint); if that is expected, "
                + "remove its line from \(pins) and sync again"
            return GIT_ECERTIFICATE.rawValue
        }
        return 0
    }
    let line = "\(name) \(fingerprint)\n"
    if let handle = FileHandle(forWritingAtPath: pins) {
        handle.seekToEndOfFile()
        handle.write(Data(line.utf8))
        try? handle.close()
    } else {
        _ = FileManager.default.createFile(atPath: pins, contents: Data(line.utf8))
    }
    context.pinnedHostKey = "\(name) \(fingerprint)"
    return 0
}

/// A libgit2 failure, with libgit2's message and what AutoServe was doing; never holds a secret.
struct GitError: Error, Sendable, CustomStringConvertible {
    var code: Int32
    var message: String

    var description: String { message }
}
