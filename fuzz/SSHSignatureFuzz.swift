// libFuzzer target: the SSHSIG envelope of a commit's signature and its base64 (`SSHSignatureEnvelope`, `Base64`,
// `SSHReader` of Sources/ModelSource/SSHWire.swift, compiled in with this file by fuzz/run.sh). A commit's signature
// comes from the models repository: untrusted.
//
// The oracles:
// - any text, bare or inside the armor's lines, ends in an envelope or a `Malformed`, never a trap;
// - an envelope read from the input, armored again, reads back as the same fields;
// - round trip: five fields cut from the input (at 0x00 bytes) armored as ssh-keygen writes a signature read back as
//   the same fields, and any bytes encoded in base64 decode to themselves.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSSHSignature(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    let text = String(decoding: bytes, as: UTF8.self)
    if let envelope = try? SSHSignatureEnvelope(armored: text) {
        guard (try? SSHSignatureEnvelope(armored: envelope.armored)) == envelope else { fail("an envelope read does not read back once armored", bytes) }
    }
    _ = try? SSHSignatureEnvelope(armored: "\(SSHSignatureEnvelope.begin)\n\(text)\n\(SSHSignatureEnvelope.end)\n")
    var fields = bytes.split(separator: 0, maxSplits: 4, omittingEmptySubsequences: false).map { Array($0) }
    while fields.count < 5 { fields.append([]) }
    let made = SSHSignatureEnvelope(key: fields[0], namespace: fields[1], reserved: fields[2], hashName: fields[3], signature: fields[4])
    guard (try? SSHSignatureEnvelope(armored: made.armored)) == made else { fail("armored fields do not read back", bytes) }
    guard Base64.decode(Array(Base64.encode(bytes).utf8)) == bytes else { fail("base64 does not decode to what it encoded", bytes) }
    return 0
}

func fail(_ what: String, _ bytes: [UInt8]) -> Never {
    fatalError("FUZZ FAILURE: \(what): \(bytes.prefix(400))")
}
