/// SSH's wire encoding (RFC 4251) and the SSHSIG envelope of a signature (OpenSSH's PROTOCOL.sshsig), read with every
/// length checked against what is left before anything is taken: a commit's signature comes from the repository,
/// untrusted. No cryptography here (`CommitSignature` verifies), so that fuzz/SSHSignatureFuzz.swift compiles it alone.
struct SSHReader {
    struct Malformed: Error {
        var reason: String
    }

    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset == bytes.count }

    mutating func bytes(_ count: Int) throws(Malformed) -> [UInt8] {
        guard count >= 0, count <= bytes.count - offset else { throw Malformed(reason: "a field of \(count) bytes where \(bytes.count - offset) are left") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    mutating func uint32() throws(Malformed) -> UInt32 {
        try bytes(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func string() throws(Malformed) -> [UInt8] {
        try bytes(Int(try uint32()))
    }

    static func append(_ field: [UInt8], to output: inout [UInt8]) {
        let count = UInt32(field.count)
        output += [UInt8(count >> 24), UInt8(count >> 16 & 0xff), UInt8(count >> 8 & 0xff), UInt8(count & 0xff)] + field
    }
}

/// The fields of an armored SSH signature (`-----BEGIN SSH SIGNATURE-----`, base64 of `"SSHSIG" uint32 version
/// string key string namespace string reserved string hash string signature`).
struct SSHSignatureEnvelope: Equatable {
    static let begin = "-----BEGIN SSH SIGNATURE-----"
    static let end = "-----END SSH SIGNATURE-----"

    var key: [UInt8]
    var namespace: [UInt8]
    var reserved: [UInt8]
    var hashName: [UInt8]
    var signature: [UInt8]

    init(key: [UInt8], namespace: [UInt8], reserved: [UInt8], hashName: [UInt8], signature: [UInt8]) {
        (self.key, self.namespace, self.reserved, self.hashName, self.signature) = (key, namespace, reserved, hashName, signature)
    }

    init(armored: String) throws(SSHReader.Malformed) {
        guard let start = armored.firstRange(of: Self.begin), let stop = armored[start.upperBound...].firstRange(of: Self.end) else {
            throw SSHReader.Malformed(reason: "it is neither an SSH nor a GPG signature")
        }
        guard let blob = Base64.decode(armored[start.upperBound..<stop.lowerBound].utf8.filter { $0 > 0x20 }) else {
            throw SSHReader.Malformed(reason: "its body is not base64")
        }
        var reader = SSHReader(blob)
        guard try reader.bytes(6) == Array("SSHSIG".utf8) else { throw SSHReader.Malformed(reason: "it does not start with SSHSIG") }
        let version = try reader.uint32()
        guard version == 1 else { throw SSHReader.Malformed(reason: "its version is \(version), not 1") }
        key = try reader.string()
        namespace = try reader.string()
        reserved = try reader.string()
        hashName = try reader.string()
        signature = try reader.string()
        guard reader.isAtEnd else { throw SSHReader.Malformed(reason: "bytes follow its signature") }
    }

    /// The armored text, 70 characters a line, as ssh-keygen writes it.
    var armored: String {
        var blob = Array("SSHSIG".utf8) + [0, 0, 0, 1]
        for field in [key, namespace, reserved, hashName, signature] { SSHReader.append(field, to: &blob) }
        let text = Base64.encode(blob)
        var lines: [String] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 70, limitedBy: text.endIndex) ?? text.endIndex
            lines.append(String(text[index..<next]))
            index = next
        }
        return ([Self.begin] + lines + [Self.end]).joined(separator: "\n") + "\n"
    }
}

/// Base64 (RFC 4648, padded), without Foundation: the fuzz target compiles this file alone.
enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            let value = chunk.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (16 - 8 * UInt32($1.offset)) }
            for position in 0..<4 {
                output.append(position <= chunk.count ? alphabet[Int(value >> (18 - 6 * UInt32(position)) & 63)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The bytes, or nil when the text is not padded base64.
    static func decode(_ text: [UInt8]) -> [UInt8]? {
        guard text.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(text.count / 4 * 3)
        var index = 0
        while index < text.count {
            var value: UInt32 = 0
            var padding = 0
            for position in 0..<4 {
                let character = text[index + position]
                if character == UInt8(ascii: "=") {
                    // Padding only at the end of the last group, at most two.
                    guard index + 4 == text.count, position >= 2 else { return nil }
                    padding += 1
                    value <<= 6
                    continue
                }
                guard padding == 0, let digit = alphabet.firstIndex(of: character) else { return nil }
                value = value << 6 | UInt32(digit)
            }
            output += [UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)].prefix(3 - padding)
            index += 4
        }
        return output
    }
}
