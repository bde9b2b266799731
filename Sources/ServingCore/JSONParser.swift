/// A strict JSON parser over raw bytes: validates without allocating, builds a `JSONValue` only when asked.
///
/// The request path uses `locateObjectMember` to validate a body and find its `variables` object in one
/// pass, without building a tree: the plugin decodes those bytes straight into the model's type. Nesting is
/// bounded, so no input can exhaust the stack.
public struct JSONParser {
    public static let maximumDepth = 256

    // `@usableFromInline`: the walkers over a validated document (JSONParser+Tree.swift) are inlined where they are
    // called, with their closures, as in the Open Inference Protocol's tensor reader (docs/models.md, "Wide rows").
    @usableFromInline let bytes: UnsafeRawBufferPointer
    @usableFromInline var index = 0
    @usableFromInline var depth = 0

    @usableFromInline init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Parses a whole document.
    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONParseError) -> JSONValue {
        let array = Array(bytes)
        let result = array.withUnsafeBytes { raw -> Result<JSONValue, JSONParseError> in
            var parser = JSONParser(raw)
            do throws(JSONParseError) {
                let value = try parser.parseValue()
                try parser.expectEnd()
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Validates a whole document that must be an object, returning the byte range of `key`'s value.
    public static func locateObjectMember(_ key: String, in bytes: UnsafeRawBufferPointer) throws(JSONParseError) -> ObjectMember {
        guard let found = try locateObjectMembers([key], in: bytes)[0] else { throw JSONParseError(reason: .missingMember(key), offset: 0) }
        return found
    }

    /// Validates a whole document that must be an object, returning the byte range of each key's value (`nil` for
    /// a key it does not have), in one pass.
    public static func locateObjectMembers(_ keys: [String], in bytes: UnsafeRawBufferPointer) throws(JSONParseError) -> [ObjectMember?] {
        try locateObjectMembers(keys, in: bytes, elementsOf: nil).members
    }

    /// The same, and the elements of the value of `keys[elementsOf]` when it is an array, found in the same pass: a
    /// batch's rows are validated once, not once by the document and again by the array.
    public static func locateObjectMembers(
        _ keys: [String], in bytes: UnsafeRawBufferPointer, elementsOf arrayKey: Int?
    ) throws(JSONParseError) -> (members: [ObjectMember?], elements: [ObjectMember]) {
        var parser = JSONParser(bytes)
        parser.skipWhitespace()
        guard parser.peek() == UInt8(ascii: "{") else {
            if parser.index >= bytes.count { throw JSONParseError(reason: .empty, offset: 0) }
            try parser.skipValue()
            try parser.expectEnd()
            throw JSONParseError(reason: .notAnObject, offset: 0)
        }
        let keyBytes = keys.map { Array($0.utf8) }
        var found = [ObjectMember?](repeating: nil, count: keys.count)
        var elements: [ObjectMember] = []
        try parser.forEachMember { parser, key throws(JSONParseError) in
            // A repeated key: the first one counts, as inside `variables` (docs/http-api.md, "HTTP API").
            let position = keyBytes.indices.first { found[$0] == nil && parser.stringEquals(key, keyBytes[$0]) }
            parser.skipWhitespace()
            let valueStart = parser.index
            if position != nil, position == arrayKey, parser.peek() == UInt8(ascii: "[") {
                try parser.forEachElement { parser throws(JSONParseError) in
                    parser.skipWhitespace()
                    let start = parser.index
                    try parser.skipValue()
                    elements.append(ObjectMember(range: start..<parser.index, kind: ValueKind(firstByte: bytes[start])))
                }
            } else {
                try parser.skipValue()
            }
            if let position { found[position] = ObjectMember(range: valueStart..<parser.index, kind: ValueKind(firstByte: bytes[valueStart])) }
        }
        try parser.expectEnd()
        return (found, elements)
    }

    /// The elements of the array at `range` of a document already validated: each one's byte range and kind.
    public static func arrayElements(_ range: Range<Int>, in bytes: UnsafeRawBufferPointer) throws(JSONParseError) -> [ObjectMember] {
        var parser = JSONParser(bytes)
        parser.index = range.lowerBound
        var elements: [ObjectMember] = []
        try parser.forEachElement { parser throws(JSONParseError) in
            parser.skipWhitespace()
            let start = parser.index
            try parser.skipValue()
            elements.append(ObjectMember(range: start..<parser.index, kind: ValueKind(firstByte: bytes[start])))
        }
        return elements
    }

    /// Where a top-level member's value lies in the document, and what kind of value it is.
    public struct ObjectMember: Equatable, Sendable {
        public var range: Range<Int>
        public var kind: ValueKind

        @usableFromInline init(range: Range<Int>, kind: ValueKind) {
            self.range = range
            self.kind = kind
        }
    }

    public enum ValueKind: String, Sendable {
        case object = "an object"
        case array = "an array"
        case string = "a string"
        case number = "a number"
        case bool = "a boolean"
        case null = "null"

        @inlinable init(firstByte: UInt8) {
            switch firstByte {
            case UInt8(ascii: "{"): self = .object
            case UInt8(ascii: "["): self = .array
            case UInt8(ascii: "\""): self = .string
            case UInt8(ascii: "t"), UInt8(ascii: "f"): self = .bool
            case UInt8(ascii: "n"): self = .null
            default: self = .number
            }
        }
    }

    // MARK: - Scanning

    @inlinable func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    @inlinable mutating func skipWhitespace() {
        var position = index
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default:
                index = position
                return
            }
        }
        index = position
    }

    @inline(__always) mutating func expect(_ byte: UInt8) throws(JSONParseError) {
        guard index < bytes.count, bytes[index] == byte else { throw unexpected(expecting: byte) }
        index += 1
    }

    @inline(never) func unexpected(expecting byte: UInt8) -> JSONParseError {
        unexpected(expecting: "'\(Character(Unicode.Scalar(byte)))'")
    }

    mutating func expectEnd() throws(JSONParseError) {
        skipWhitespace()
        guard index == bytes.count else { throw unexpected(expecting: "the end of the document") }
    }

    func unexpected(expecting: String) -> JSONParseError {
        guard let byte = peek() else { return JSONParseError(reason: .truncated(expecting: expecting), offset: index) }
        return JSONParseError(reason: .unexpectedByte(byte, expecting: expecting), offset: index)
    }

    /// Whether a string token (quotes included) holds exactly `key`, its escapes decoded.
    func stringEquals(_ token: Range<Int>, _ key: [UInt8]) -> Bool {
        if token.count - 2 == key.count {
            var equal = true
            for offset in 0..<key.count where bytes[token.lowerBound + 1 + offset] != key[offset] {
                equal = false
                break
            }
            if equal { return true }
        }
        guard bytes[token].contains(UInt8(ascii: "\\")) else { return false }
        return Array(decodeString(token).utf8) == key
    }

    mutating func enter() throws(JSONParseError) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw JSONParseError(reason: .tooDeep, offset: index) }
    }

    /// Validates one value and moves past it.
    ///
    /// Most values, a row's variables among them, are walked once by `skipValueQuickly`; a value it leaves (an error
    /// among them) is walked again by the exact validator, which says what is wrong and where.
    mutating func skipValue() throws(JSONParseError) {
        if skipValueQuickly() { return }
        try skipValueExactly()
    }

    /// The exact validator, for a value `skipValueQuickly` left: it walks the values inside with itself alone, so
    /// that no byte is walked more than twice.
    mutating func skipValueExactly() throws(JSONParseError) {
        skipWhitespace()
        guard let byte = peek() else { throw unexpected(expecting: "a value") }
        switch byte {
        case UInt8(ascii: "{"):
            try forEachMember { parser, _ throws(JSONParseError) in try parser.skipValueExactly() }
        case UInt8(ascii: "["):
            try forEachElement { parser throws(JSONParseError) in try parser.skipValueExactly() }
        case UInt8(ascii: "\""):
            try skipString()
        case UInt8(ascii: "t"):
            try skipLiteral("true")
        case UInt8(ascii: "f"):
            try skipLiteral("false")
        case UInt8(ascii: "n"):
            try skipLiteral("null")
        default:
            _ = try scanNumber()
        }
    }

    /// Validates the value at `index` (after any whitespace) and moves past it, in one loop over the bytes with its
    /// position in a register; `false`, and `index` unchanged, for a value it leaves to the exact walk: an escape of
    /// half a surrogate pair, a number that might pass a double's range, and anything invalid. It accepts only what
    /// `skipValueExactly` accepts, and ends where it ends (the fuzz target `json-parser` checks both).
    @inline(never) mutating func skipValueQuickly() -> Bool {
        guard let base = bytes.baseAddress else { return false }
        var cursor = QuickCursor(parser: self, base: base, end: bytes.count, position: index)
        // The open containers, innermost in the lowest bit: 1 an object, 0 an array; at most `maximumDepth`.
        var containers = ContainerStack()
        let depthLeft = Self.maximumDepth - depth

        // A value is expected at the cursor.
        value: while true {
            cursor.passSpaces()
            guard let first = cursor.byte else { return false }
            switch first {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard containers.count < depthLeft else { return false }
                let object = first == UInt8(ascii: "{")
                cursor.position += 1
                cursor.passSpaces()
                if cursor.byte == (object ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    cursor.position += 1
                } else {
                    containers.push(object: object)
                    // An object's first member: its key and colon, then its value.
                    guard !object || cursor.passKey() else { return false }
                    continue value
                }
            case UInt8(ascii: "\""):
                guard cursor.passString() else { return false }
            case UInt8(ascii: "t"):
                guard cursor.passLiteral("true") else { return false }
            case UInt8(ascii: "f"):
                guard cursor.passLiteral("false") else { return false }
            case UInt8(ascii: "n"):
                guard cursor.passLiteral("null") else { return false }
            default:
                guard cursor.passNumber() else { return false }
            }
            // Past a value: the end of the walk, or a comma, or the close of the containers it ends.
            while containers.count > 0 {
                cursor.passSpaces()
                guard let byte = cursor.byte else { return false }
                cursor.position += 1
                if byte == UInt8(ascii: ",") {
                    guard containers.innermostIsObject else { continue value }
                    cursor.passSpaces()
                    guard cursor.passKey() else { return false }
                    continue value
                }
                guard byte == (containers.innermostIsObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) else { return false }
                containers.pop()
            }
            index = cursor.position
            return true
        }
    }

    /// Where `skipValueQuickly` is in the document: its bytes by their address, the position in a register (a struct
    /// of its own rather than local functions that capture the position, which the compiler may box).
    struct QuickCursor {
        /// For the checks of escapes and UTF-8.
        let parser: JSONParser
        let base: UnsafeRawPointer
        let end: Int
        var position: Int

        /// The byte at the position, `nil` at the end.
        @inline(__always) var byte: UInt8? { position < end ? base.load(fromByteOffset: position, as: UInt8.self) : nil }

        @inline(__always) func byte(at offset: Int) -> UInt8 { base.load(fromByteOffset: offset, as: UInt8.self) }

        @inline(__always) func word(at offset: Int) -> UInt64 { UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }

        @inline(__always) mutating func passSpaces() {
            while position < end {
                switch byte(at: position) {
                case 0x20, 0x0A, 0x0D, 0x09: position += 1
                default: return
                }
            }
        }

        /// Past a member's key, the white space after it and its colon; `false` when they are not there.
        @inline(__always) mutating func passKey() -> Bool {
            guard byte == UInt8(ascii: "\""), passString() else { return false }
            passSpaces()
            guard byte == UInt8(ascii: ":") else { return false }
            position += 1
            return true
        }

        /// Past the string at the position (its opening quote); `false` for an escape of half a surrogate pair (the
        /// exact walk pairs them) and for anything invalid. Plain ASCII here, the rest in `passRestOfString`.
        @inline(__always) mutating func passString() -> Bool {
            position += 1
            while position + 8 <= end {
                let stops = JSONParser.stringStops(in: word(at: position))
                if stops != 0 {
                    position += stops.trailingZeroBitCount >> 3
                    guard byte(at: position) == UInt8(ascii: "\"") else { break }
                    position += 1
                    return true
                }
                position += 8
            }
            return passRestOfString()
        }

        /// The rest of a string, from a byte that is not plain ASCII or from the last eight bytes of the document.
        @inline(never) mutating func passRestOfString() -> Bool {
            while let byte {
                switch byte {
                case UInt8(ascii: "\""):
                    position += 1
                    return true
                case UInt8(ascii: "\\"):
                    guard position + 1 < end else { return false }
                    switch self.byte(at: position + 1) {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
                        UInt8(ascii: "r"), UInt8(ascii: "t"):
                        position += 2
                    case UInt8(ascii: "u"):
                        guard let unit = parser.hexQuad(at: position + 2), !(0xD800..<0xE000).contains(unit) else { return false }
                        position += 6
                    default: return false
                    }
                case 0..<0x20: return false
                case 0x80...:
                    guard let length = try? parser.utf8SequenceLength(at: position) else { return false }
                    position += length
                default: position += 1
                }
            }
            return false
        }

        /// Past the digits at the position, how many there were.
        @inline(__always) mutating func passDigits() -> Int {
            let first = position
            while position + 8 <= end {
                let stops = JSONParser.nonDigits(in: word(at: position))
                if stops != 0 {
                    position += stops.trailingZeroBitCount >> 3
                    return position - first
                }
                position += 8
            }
            while position < end, JSONParser.isDigit(byte(at: position)) { position += 1 }
            return position - first
        }

        /// Past a number that cannot pass a double's range; `false` for one that might (the exact walk computes it),
        /// and for anything invalid.
        @inline(__always) mutating func passNumber() -> Bool {
            let start = position
            if byte == UInt8(ascii: "-") { position += 1 }
            var wholeDigits = 1
            if byte == UInt8(ascii: "0") {
                position += 1
            } else {
                wholeDigits = passDigits()
                guard wholeDigits > 0 else { return false }
            }
            if byte == UInt8(ascii: ".") {
                position += 1
                guard passDigits() > 0 else { return false }
            }
            guard let letter = byte, letter | 0x20 == UInt8(ascii: "e") else {
                // Without an exponent, a number needs 309 characters to pass a double's range.
                return position - start < 309
            }
            return passExponent(wholeDigits: wholeDigits)
        }

        /// Past a number's exponent, at its `e`.
        @inline(never) mutating func passExponent(wholeDigits: Int) -> Bool {
            position += 1
            let sign = byte
            if sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { position += 1 }
            let exponentDigits = passDigits()
            // Below 10^200 before its exponent, a number stays below 10^299 with an exponent of at most 99.
            return exponentDigits > 0 && wholeDigits < 200 && (sign == UInt8(ascii: "-") || exponentDigits <= 2)
        }

        @inline(__always) mutating func passLiteral(_ literal: StaticString) -> Bool {
            let count = literal.utf8CodeUnitCount
            guard position + count <= end else { return false }
            for offset in 0..<count where byte(at: position + offset) != literal.utf8Start[offset] { return false }
            position += count
            return true
        }
    }

    /// The containers `skipValueQuickly` is inside, as bits: up to 256 of them.
    struct ContainerStack {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var count = 0

        var innermostIsObject: Bool { words.0 & 1 == 1 }

        mutating func push(object: Bool) {
            words.3 = words.3 << 1 | words.2 >> 63
            words.2 = words.2 << 1 | words.1 >> 63
            words.1 = words.1 << 1 | words.0 >> 63
            words.0 = words.0 << 1 | (object ? 1 : 0)
            count += 1
        }

        mutating func pop() {
            words.0 = words.0 >> 1 | words.1 << 63
            words.1 = words.1 >> 1 | words.2 << 63
            words.2 = words.2 >> 1 | words.3 << 63
            words.3 >>= 1
            count -= 1
        }
    }

    /// Walks an object from its `{` to past its `}`; `member` is called after each key and its colon, with
    /// the key's byte range (quotes included), and must consume the value.
    mutating func forEachMember(_ member: (inout JSONParser, Range<Int>) throws(JSONParseError) -> Void) throws(JSONParseError) {
        try enter()
        try expect(UInt8(ascii: "{"))
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
        } else {
            while true {
                skipWhitespace()
                let keyStart = index
                try skipString()
                let key = keyStart..<index
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                try member(&self, key)
                skipWhitespace()
                if peek() == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                try expect(UInt8(ascii: "}"))
                break
            }
        }
        depth -= 1
    }

    /// Walks an array from its `[` to past its `]`; `element` must consume each element.
    mutating func forEachElement(_ element: (inout JSONParser) throws(JSONParseError) -> Void) throws(JSONParseError) {
        try enter()
        try expect(UInt8(ascii: "["))
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
        } else {
            while true {
                try element(&self)
                skipWhitespace()
                if peek() == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                try expect(UInt8(ascii: "]"))
                break
            }
        }
        depth -= 1
    }

    mutating func skipLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw JSONParseError(reason: .truncated(expecting: "\(literal)"), offset: index) }
        for offset in 0..<count where bytes[index + offset] != literal.utf8Start[offset] {
            throw JSONParseError(reason: .unexpectedByte(bytes[index + offset], expecting: "\(literal)"), offset: index + offset)
        }
        index += count
    }

    /// Validates a string with its escapes and moves past its closing quote.
    mutating func skipString() throws(JSONParseError) {
        guard peek() == UInt8(ascii: "\"") else { throw unexpected(expecting: "a string") }
        var position = index + 1
        // Plain ASCII (most of a row's names and strings) on a local cursor; anything else below.
        defer { index = position }
        while position < bytes.count {
            // Eight bytes at a time while none of them ends the plain run.
            while position + 8 <= bytes.count {
                let stops = Self.stringStops(in: word(at: position))
                guard stops == 0 else {
                    position += stops.trailingZeroBitCount >> 3
                    break
                }
                position += 8
            }
            guard position < bytes.count else { break }
            let byte = bytes[position]
            if byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
                position += 1
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return
            case UInt8(ascii: "\\"):
                guard position + 1 < bytes.count else {
                    throw JSONParseError(reason: .truncated(expecting: "an escape sequence and the end of a string"), offset: position)
                }
                switch bytes[position + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    position += 2
                case UInt8(ascii: "u"):
                    guard let unit = hexQuad(at: position + 2) else { throw JSONParseError(reason: .invalidEscape, offset: position) }
                    switch unit {
                    case 0xD800..<0xDC00:
                        // A high surrogate must be followed by the escape of a low one: together one character.
                        guard position + 12 <= bytes.count, bytes[position + 6] == UInt8(ascii: "\\"), bytes[position + 7] == UInt8(ascii: "u"),
                            let low = hexQuad(at: position + 8), (0xDC00..<0xE000).contains(low)
                        else { throw JSONParseError(reason: .unpairedSurrogate, offset: position) }
                        position += 12
                    case 0xDC00..<0xE000:
                        throw JSONParseError(reason: .unpairedSurrogate, offset: position)
                    default:
                        position += 6
                    }
                default:
                    throw JSONParseError(reason: .invalidEscape, offset: position)
                }
            case 0..<0x20:
                throw JSONParseError(reason: .controlCharacterInString, offset: position)
            default:
                position += try utf8SequenceLength(at: position)
            }
        }
        throw JSONParseError(reason: .truncated(expecting: "the end of a string"), offset: position)
    }

    /// The four hex digits at `position` as a UTF-16 code unit, or `nil` when they are not four hex digits.
    func hexQuad(at position: Int) -> UInt32? {
        guard position + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for offset in 0..<4 {
            guard let digit = Self.hexValue(bytes[position + offset]) else { return nil }
            value = value << 4 | digit
        }
        return value
    }

    /// The length of the well-formed UTF-8 sequence of two to four bytes at `position` (Unicode's table 3-7:
    /// no overlong forms, no surrogates, nothing above U+10FFFF).
    func utf8SequenceLength(at position: Int) throws(JSONParseError) -> Int {
        let lead = bytes[position]
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: (length, low) = (3, 0xA0)
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: (length, high) = (3, 0x9F)
        case 0xF0: (length, low) = (4, 0x90)
        case 0xF1...0xF3: length = 4
        case 0xF4: (length, high) = (4, 0x8F)
        default: throw JSONParseError(reason: .invalidUTF8, offset: position)
        }
        guard position + length <= bytes.count else { throw JSONParseError(reason: .invalidUTF8, offset: position) }
        guard (low...high).contains(bytes[position + 1]) else { throw JSONParseError(reason: .invalidUTF8, offset: position) }
        for offset in 2..<length where !(0x80...0xBF).contains(bytes[position + offset]) {
            throw JSONParseError(reason: .invalidUTF8, offset: position)
        }
        return length
    }

    /// Validates a number against JSON's grammar and returns its byte range.
    mutating func scanNumber() throws(JSONParseError) -> Range<Int> {
        let start = index
        let end = bytes.count
        var position = index
        /// Moves past the digits at `position`, returning how many there were.
        func digits() -> Int {
            let first = position
            while position + 8 <= end {
                let stops = Self.nonDigits(in: word(at: position))
                guard stops == 0 else {
                    position += stops.trailingZeroBitCount >> 3
                    return position - first
                }
                position += 8
            }
            while position < end, Self.isDigit(bytes[position]) { position += 1 }
            return position - first
        }
        if position < end, bytes[position] == UInt8(ascii: "-") { position += 1 }
        guard position < end, Self.isDigit(bytes[position]) else {
            index = position
            throw unexpected(expecting: "a value")
        }
        if bytes[position] == UInt8(ascii: "0") { position += 1 } else { _ = digits() }
        if position < end, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard digits() > 0 else {
                index = position
                throw unexpected(expecting: "a digit after '.'")
            }
        }
        if position < end, bytes[position] | 0x20 == UInt8(ascii: "e") {
            position += 1
            if position < end, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard digits() > 0 else {
                index = position
                throw unexpected(expecting: "a digit in the exponent")
            }
            index = position
            // An exponent can take a number past a double's range.
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            if let value = Double(text), value.isInfinite { throw JSONParseError(reason: .numberOutOfRange(text), offset: start) }
        } else if position - start >= 309 {
            index = position
            // Without an exponent, a number needs 309 digits to pass a double's range (about 1.8e308).
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            if let value = Double(text), value.isInfinite { throw JSONParseError(reason: .numberOutOfRange(String(text.prefix(20)) + "…"), offset: start) }
        }
        index = position
        return start..<index
    }

    // MARK: Eight bytes at a time
    //
    // A string's plain characters and a number's digits are most of a row's bytes: each test below looks at eight of
    // them in one 64-bit word and sets the high bit of each byte that fails it. Only the lowest set bit is exact (a
    // borrow can set bits above a byte that fails), and only the lowest one is used: the first byte to stop at.

    /// The eight bytes at `position`, the first in the lowest byte; eight must remain.
    @inlinable @inline(__always) func word(at position: Int) -> UInt64 {
        UInt64(littleEndian: bytes.baseAddress!.loadUnaligned(fromByteOffset: position, as: UInt64.self))
    }

    @inlinable static var ones: UInt64 { 0x0101_0101_0101_0101 }
    @inlinable static var highBits: UInt64 { 0x8080_8080_8080_8080 }

    /// The quotes and backslashes.
    @inlinable @inline(__always) static func quotesAndBackslashes(in word: UInt64) -> UInt64 {
        let quotes = word ^ (ones &* 0x22)
        let backslashes = word ^ (ones &* 0x5C)
        return ((quotes &- ones) & ~quotes | (backslashes &- ones) & ~backslashes) & highBits
    }

    /// The bytes a string's plain run stops at: a quote, a backslash, a control character, or any byte of 0x80 or more.
    @inline(__always) static func stringStops(in word: UInt64) -> UInt64 {
        let control = (word &- ones &* 0x20) & ~word
        return quotesAndBackslashes(in: word) | (control | word) & highBits
    }

    /// The bytes that are not an ASCII digit.
    @inline(__always) static func nonDigits(in word: UInt64) -> UInt64 {
        let aboveNine = word &+ ones &* 0x46
        let belowZero = ~((word | highBits) &- ones &* 0x30)
        return (aboveNine | belowZero | word) & highBits
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}
