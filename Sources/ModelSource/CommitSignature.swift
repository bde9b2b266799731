import Crypto
import Foundation
import ServingCore

/// The keys whose signatures make a commit servable (`MODELS_REPO_ALLOWED_SIGNERS`; docs/git-sync.md, "Signed
/// commits"), in git's `gpg.ssh.allowedSignersFile` format: one signer a line, `principals [options] keytype key`.
public struct AllowedSigners: Sendable {
    public struct Signer: Sendable {
        public var principals: String
        /// The public key as SSH encodes it (the base64 field, decoded).
        public var key: [UInt8]
        /// `namespaces="git,…"`; `nil`: every namespace.
        public var namespaces: [String]?
    }

    public var signers: [Signer]
    /// The file, for messages.
    public var path: String

    /// The key types this server verifies.
    public static let keyTypes = ["ssh-ed25519", "ecdsa-sha2-nistp256"]

    /// Reads and parses the file; an unreadable file or a line that is not a signer is an error naming it.
    public static func load(_ path: String) throws(SourceError) -> AllowedSigners {
        guard let data = FileManager.default.contents(atPath: path), data.count <= 1 << 20 else {
            throw SourceError(
                "MODELS_REPO_ALLOWED_SIGNERS=\(path) cannot be read (or is over 1 MiB); write one signer a line, as git's gpg.ssh.allowedSignersFile")
        }
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    public static func parse(_ text: String, path: String) throws(SourceError) -> AllowedSigners {
        var signers: [Signer] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            func failure(_ why: String) -> SourceError { SourceError("\(path):\(index + 1): \(why)") }
            var fields = tokens(line)
            guard fields.count >= 3 else { throw failure("expected 'principals [options] keytype key', like 'ana@example.com ssh-ed25519 AAAAC3…'") }
            let principals = fields.removeFirst()
            var namespaces: [String]?
            if !fields[0].hasPrefix("ssh-") && !fields[0].hasPrefix("ecdsa-") && !fields[0].hasPrefix("sk-") {
                for option in fields.removeFirst().split(separator: ",") {
                    let parts = option.split(separator: "=", maxSplits: 1)
                    let name = parts[0].lowercased()
                    let value = parts.count == 2 ? String(parts[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) : ""
                    switch name {
                    case "namespaces": namespaces = value.split(separator: ",").map(String.init)
                    default: throw failure("the option '\(name)' is not supported here (namespaces is); remove it")
                    }
                }
            }
            guard fields.count >= 2 else { throw failure("expected a key type and a key after the principals") }
            let type = fields[0]
            guard keyTypes.contains(type) else {
                throw failure("keys of type \(type) are not verified by this server; use \(keyTypes.joined(separator: " or "))")
            }
            guard let key = Data(base64Encoded: fields[1]), var reader = Optional(SSHReader(Array(key))), (try? reader.string()) == Array(type.utf8)
            else { throw failure("the key is not a base64 \(type) public key") }
            signers.append(Signer(principals: principals, key: Array(key), namespaces: namespaces))
        }
        guard !signers.isEmpty else { throw SourceError("\(path) names no signer: every commit would be refused; add one line per signer's key") }
        return AllowedSigners(signers: signers, path: path)
    }

    /// Whitespace-separated fields, a double-quoted one (with spaces) kept whole.
    static func tokens(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        for character in line {
            if character == "\"" { quoted.toggle() }
            if character.isWhitespace && !quoted {
                if !current.isEmpty { fields.append(current) }
                current = ""
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { fields.append(current) }
        return fields
    }
}

/// An SSH signature of a commit (SSHSIG, as `git commit -S` with `gpg.format=ssh` makes it), checked in Swift.
public enum CommitSignature {
    public enum Verdict: Sendable, Equatable {
        case verified(principals: String, fingerprint: String)
        /// Why the commit is not served, and the signing key's fingerprint when the signature names one.
        case refused(String, fingerprint: String?)
    }

    /// The verdict on the HEAD commit of the git repository that holds `directory` (`autoserve check` with
    /// `MODELS_REPO_ALLOWED_SIGNERS`): the commit, and whether it would serve.
    public static func verifyHead(of directory: String, signers path: String) -> (commit: String?, verdict: Verdict) {
        do {
            let signers = try AllowedSigners.load(path)
            let repository = try GitRepository.discover(from: directory)
            let commit = try repository.head()
            let signed = try repository.signature(ofCommit: commit)
            return (commit, verify(signed?.signature, payload: signed?.payload ?? [], signers: signers))
        } catch let error as GitError {
            return (nil, .refused(error.message, fingerprint: nil))
        } catch {
            return (nil, .refused("\(error)", fingerprint: nil))
        }
    }

    /// `SHA256:<base64>` of a public key, as `ssh-keygen -l` prints it.
    public static func fingerprint(_ key: [UInt8]) -> String {
        "SHA256:" + Data(SHA256.hash(data: key)).base64EncodedString().trimmingCharacters(in: CharacterSet(charactersIn: "="))
    }

    /// Whether `armored` (the commit's `gpgsig` header) is a valid signature of `payload` by a key of `signers`.
    public static func verify(_ armored: String?, payload: [UInt8], signers: AllowedSigners) -> Verdict {
        guard let armored else {
            return .refused("it is not signed; sign commits with an SSH key whose public key is in \(signers.path) (git commit -S)", fingerprint: nil)
        }
        if armored.contains("-----BEGIN PGP SIGNATURE-----") {
            return .refused("it is signed with GPG, which this server does not verify; sign with an SSH key (git config gpg.format ssh)", fingerprint: nil)
        }
        let envelope: SSHSignatureEnvelope
        do {
            envelope = try SSHSignatureEnvelope(armored: armored)
        } catch {
            return .refused("its signature is malformed: \(error.reason)", fingerprint: nil)
        }
        do {
            let fingerprint = fingerprint(envelope.key)
            guard envelope.namespace == Array("git".utf8) else {
                return .refused(
                    "its signature is for the namespace '\(String(decoding: envelope.namespace, as: UTF8.self))', not git's", fingerprint: fingerprint)
            }
            guard let signer = signers.signers.first(where: { $0.key == envelope.key }) else {
                return .refused("it is signed by the key \(fingerprint), which is not in \(signers.path)", fingerprint: fingerprint)
            }
            if let namespaces = signer.namespaces, !namespaces.contains("git") {
                return .refused(
                    "the key \(fingerprint) is allowed in \(signers.path) for \(namespaces.joined(separator: ",")) only, not git", fingerprint: fingerprint)
            }
            let digest: [UInt8]
            switch String(decoding: envelope.hashName, as: UTF8.self) {
            case "sha512": digest = Array(SHA512.hash(data: payload))
            case "sha256": digest = Array(SHA256.hash(data: payload))
            default:
                return .refused(
                    "its signature uses the hash '\(String(decoding: envelope.hashName, as: UTF8.self))', not sha256 or sha512", fingerprint: fingerprint)
            }
            var signed = Array("SSHSIG".utf8)
            for field in [Array("git".utf8), envelope.reserved, envelope.hashName, digest] { SSHReader.append(field, to: &signed) }
            guard try check(envelope.signature, of: signed, by: envelope.key) else {
                return .refused("its signature by the key \(fingerprint) does not match the commit", fingerprint: fingerprint)
            }
            return .verified(principals: signer.principals, fingerprint: fingerprint)
        } catch {
            return .refused("its signature is malformed (\(error.reason))", fingerprint: nil)
        }
    }

    /// Verifies an SSH signature blob (`string type, string bytes`) of `data` by a public key blob.
    static func check(_ signature: [UInt8], of data: [UInt8], by key: [UInt8]) throws(SSHReader.Malformed) -> Bool {
        var keyReader = SSHReader(key)
        var signatureReader = SSHReader(signature)
        let type = String(decoding: try keyReader.string(), as: UTF8.self)
        guard try signatureReader.string() == Array(type.utf8) else { return false }
        let bytes = try signatureReader.string()
        switch type {
        case "ssh-ed25519":
            guard let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: try keyReader.string()) else { return false }
            return publicKey.isValidSignature(bytes, for: data)
        case "ecdsa-sha2-nistp256":
            guard try keyReader.string() == Array("nistp256".utf8),
                let publicKey = try? P256.Signing.PublicKey(x963Representation: try keyReader.string())
            else { return false }
            var parts = SSHReader(bytes)
            let r = try parts.string()
            let s = try parts.string()
            guard let raw = fixed(r, 32).flatMap({ r in fixed(s, 32).map { r + $0 } }),
                let ecdsa = try? P256.Signing.ECDSASignature(rawRepresentation: raw)
            else { return false }
            return publicKey.isValidSignature(ecdsa, for: data)
        default:
            return false
        }
    }

    /// An SSH mpint as `width` big-endian bytes, or nil when it does not fit.
    static func fixed(_ mpint: [UInt8], _ width: Int) -> [UInt8]? {
        let digits = mpint.drop { $0 == 0 }
        guard digits.count <= width else { return nil }
        return [UInt8](repeating: 0, count: width - digits.count) + digits
    }
}
