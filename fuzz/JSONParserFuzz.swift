// libFuzzer target: the server's request-body parser (`JSONParser`, compiled in with this file by fuzz/run.sh).
//
// The oracle is Foundation's `JSONSerialization` on the same bytes:
// - whatever the parser accepts, Foundation accepts, and the tree written back out parses to itself;
// - whatever Foundation accepts and the parser refuses must be one of Foundation's known leniencies
//   (a trailing comma, a leading byte-order mark) or nesting past the parser's bound.
// `locateObjectMember` (the request path) must agree with `parse` on whether the document is valid, and the one-pass
// reader of an infer request's tensors with the general one on what it locates.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONParser(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    let ours = Result { () throws(JSONParseError) in try JSONParser.parse(bytes) }
    let foundation = (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
    switch ours {
    case .success(let value):
        guard foundation else { fail("the parser accepts what Foundation refuses", bytes) }
        guard (try? JSONParser.parse(value.jsonBytes)) == value else { fail("the parsed tree does not survive being written out", bytes) }
    case .failure(let error):
        if foundation, !isKnownLeniency(bytes, error) { fail("Foundation accepts what the parser refuses (\(error))", bytes) }
    }
    let located = bytes.withUnsafeBytes { raw in Result { () throws(JSONParseError) in try JSONParser.locateObjectMember("variables", in: raw) } }
    if case .success(let member) = located {
        guard case .success(let value) = ours, case .object = value else { fail("locateObjectMember accepts an invalid document", bytes) }
        let inner = Array(bytes[member.range])
        guard (try? JSONParser.parse(inner)) != nil else { fail("the located member is not a JSON value", bytes) }
    }
    // The walks over a valid document (which look only at strings and brackets) find what validating walks find.
    if case .success(let value) = ours {
        bytes.withUnsafeBytes { raw in
            var start = 0
            while start < raw.count, [0x20, 0x0A, 0x0D, 0x09].contains(raw[start]) { start += 1 }
            var end = raw.count
            while end > start, [0x20, 0x0A, 0x0D, 0x09].contains(raw[end - 1]) { end -= 1 }
            var fast: [Range<Int>] = []
            var validating: [Range<Int>] = []
            switch value {
            case .object:
                JSONParser.forEachMember(ofObjectAt: start..<end, in: raw) { key, member in fast += [key, member.range] }
                var parser = JSONParser(raw)
                parser.index = start
                try? parser.forEachMember { parser, key throws(JSONParseError) in
                    parser.skipWhitespace()
                    let valueStart = parser.index
                    try parser.skipValue()
                    validating += [key, valueStart..<parser.index]
                }
            case .array:
                JSONParser.forEachElement(ofArrayAt: start..<end, in: raw) { fast.append($0.range) }
                validating = (try? JSONParser.arrayElements(start..<end, in: raw))?.map(\.range) ?? []
            default: break
            }
            guard fast == validating else { fail("a walk over the valid document found \(fast), validating found \(validating)", bytes) }
        }
    }
    // The quick walk accepts only what the exact one accepts, and ends where it ends; it leaves a valid document to
    // the exact one only for a surrogate's escape or a number that might pass a double's range.
    bytes.withUnsafeBytes { raw in
        var quick = JSONParser(raw)
        var exact = JSONParser(raw)
        let exactEnd = Result { () throws(JSONParseError) in
            try exact.skipValueExactly()
            return exact.index
        }
        if quick.skipValueQuickly() {
            guard case .success(let end) = exactEnd, end == quick.index else {
                fail("the quick walk ends at \(quick.index), the exact one at \(exactEnd)", bytes)
            }
        } else if case .success = exactEnd, isPlain(bytes) {
            fail("the quick walk leaves a plain value to the exact one", bytes)
        }
    }
    // An infer request's tensors, located in one pass, are what the general reader (validating first) locates; the
    // general reader takes only what the parser takes.
    bytes.withUnsafeBytes { raw in
        let exact = Result { () throws(JSONParseError) in try JSONParser.locateTensorsExactly(in: raw) }
        if let quick = JSONParser.locateTensorsQuickly(in: raw) {
            guard case .success(let located) = exact, located == quick else {
                fail("the tensors located in one pass are not the general reader's: \(exact)", bytes)
            }
        }
        if case .success = exact {
            guard case .success(let value) = ours, case .object = value else { fail("locateTensors accepts an invalid document", bytes) }
        }
    }
    // A batch's rows, found in the same pass as the document is validated: the elements the array holds.
    let batch = bytes.withUnsafeBytes { raw in
        Result { () throws(JSONParseError) in try JSONParser.locateObjectMembers(["variables", "rows"], in: raw, elementsOf: 1) }
    }
    if case .success(let (members, elements)) = batch {
        guard case .success(let value) = ours, case .object = value else { fail("locateObjectMembers accepts an invalid document", bytes) }
        if let rows = members[1], rows.kind == .array {
            let walked = bytes.withUnsafeBytes { raw in (try? JSONParser.arrayElements(rows.range, in: raw))?.map(\.range) }
            guard walked == elements.map(\.range) else { fail("the rows found in one pass are not the array's elements", bytes) }
        } else if !elements.isEmpty {
            fail("elements found for rows that are not an array", bytes)
        }
    } else if case .success(let value) = ours, case .object = value {
        fail("locateObjectMembers refuses a valid object", bytes)
    }
    return 0
}

/// Whether a valid document is one the quick walk takes whole: no escape of a surrogate (`\uD800` to `\uDFFF`), no
/// number that might pass a double's range (200 characters or more, or a positive exponent of three digits or more),
/// nesting within the bound.
func isPlain(_ bytes: [UInt8]) -> Bool {
    let text = String(decoding: bytes, as: UTF8.self).lowercased()
    if text.contains("\\ud") { return false }
    var (depth, deepest, inString, escaped, run) = (0, 0, false, false, 0)
    for (index, byte) in bytes.enumerated() {
        if inString {
            if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
            continue
        }
        run = "+-.0123456789eE".utf8.contains(byte) ? run + 1 : 0
        if run >= 200 { return false }
        if byte | 0x20 == UInt8(ascii: "e"), index > 0, "0123456789".utf8.contains(bytes[index - 1]) {
            var digits = bytes[(index + 1)...].drop { $0 == UInt8(ascii: "+") }.prefix { "0123456789".utf8.contains($0) }.count
            if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "-") { digits = 0 }
            if digits >= 3 { return false }
        }
        if byte == UInt8(ascii: "\"") {
            inString = true
        } else if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
            depth += 1
            deepest = max(deepest, depth)
        } else if byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") {
            depth -= 1
        }
    }
    return deepest <= JSONParser.maximumDepth
}

/// Foundation's parser allows `[1,]` and a leading byte-order mark, and guesses UTF-16 or UTF-32 from NUL bytes
/// (`00 32 00` reads as "2"); the server follows RFC 8259 there: UTF-8 only, no trailing comma.
func isKnownLeniency(_ bytes: [UInt8], _ error: JSONParseError) -> Bool {
    if case .tooDeep = error.reason { return true }
    if bytes.contains(0) || bytes.starts(with: [0xFE, 0xFF]) || bytes.starts(with: [0xFF, 0xFE]) { return true }
    var cleaned = bytes
    if cleaned.starts(with: [0xEF, 0xBB, 0xBF]) { cleaned.removeFirst(3) }
    cleaned = removingTrailingCommas(cleaned)
    // Foundation checks a number's range only for the values it keeps: one that a repeated key replaces
    // passes, however large. The server refuses every number beyond a double.
    for _ in 0..<64 {
        do {
            _ = try JSONParser.parse(cleaned)
            return cleaned != bytes
        } catch {
            guard case .numberOutOfRange = error.reason else { return false }
            var end = error.offset
            while end < cleaned.count, "+-.0123456789eE".utf8.contains(cleaned[end]) { end += 1 }
            cleaned.replaceSubrange(error.offset..<end, with: [UInt8(ascii: "0")])
        }
    }
    return false
}

/// The bytes without any comma that only white space separates from a closing `]` or `}` (outside strings).
func removingTrailingCommas(_ bytes: [UInt8]) -> [UInt8] {
    var result: [UInt8] = []
    var inString = false
    var escaped = false
    for (index, byte) in bytes.enumerated() {
        if inString {
            if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
        } else if byte == UInt8(ascii: "\"") {
            inString = true
        } else if byte == UInt8(ascii: ",") {
            let next = bytes[(index + 1)...].first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
            if next == UInt8(ascii: "]") || next == UInt8(ascii: "}") { continue }
        }
        result.append(byte)
    }
    return result
}

func fail(_ what: String, _ bytes: [UInt8]) -> Never {
    report("FUZZ FAILURE: \(what): \(String(decoding: bytes.prefix(300), as: UTF8.self).debugDescription) (\(bytes.count) bytes)")
    abort()
}

/// Written to standard error at once: the process aborts right after, and buffered output would be lost.
func report(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
