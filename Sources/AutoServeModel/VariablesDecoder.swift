import Foundation

/// Decodes a model's variables from the request's JSON bytes, several times faster than `JSONDecoder`.
///
/// It is a shortcut, never a second opinion: whenever it cannot be certain to give exactly what Foundation's
/// `JSONDecoder` gives (a number that does not fit, `Data`/`Date`/`URL`/`Decimal`, duplicate keys of a
/// dictionary, any error at all), it gives up and the caller decodes with `JSONDecoder`, so values and
/// error messages are Foundation's. The common row — an object of numbers, strings and booleans decoded
/// into a struct or `[String: JSON]` — never gets there.
enum VariablesDecoder {
    /// The decoded value, or nil when `JSONDecoder` must decide.
    static func decode<Value: Decodable>(_: Value.Type, from bytes: UnsafeBufferPointer<UInt8>) -> Value? {
        guard let document = JSONTape(parsing: bytes) else { return nil }
        guard let value = try? document.decode(Value.self, at: 0, path: []), !document.gaveUp else { return nil }
        return value
    }
}

/// Thrown when the shortcut stops; the document's `gaveUp` flag makes sure no caller's `try?` hides it.
struct GaveUp: Error {}

/// One JSON value in document order; a container's members follow it, and `next` skips past all of them.
struct TapeNode {
    enum Kind: UInt8 { case null, bool, number, string, array, object }
    var kind: Kind
    /// Bytes of the value: a string's content without quotes, a number's text, `true`/`false`.
    var start: Int
    var end: Int
    /// The index of the node after this value's subtree.
    var next: Int
    /// Members of an object, elements of an array; for a string, whether it holds escapes; for a number read while
    /// parsing (`exact`), its value's bit pattern.
    var count: Int
    /// A number whose value the parse already has, correctly rounded (Clinger's fast path).
    var exact = false

    /// The value of a number read while parsing, kept in `count`; setting it marks the node `exact`.
    var exactValue: Double {
        get { Double(bitPattern: UInt64(bitPattern: Int64(count))) }
        set {
            count = Int(Int64(bitPattern: newValue.bitPattern))
            exact = true
        }
    }
}

/// A tape's nodes: an array's storage without its copy-on-write checks, which cost a row as much as parsing its numbers.
/// Its owner, the tape, frees it; indices are checked as an array checks them.
struct TapeNodes {
    private var base: UnsafeMutablePointer<TapeNode>
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        base = .allocate(capacity: self.capacity)
    }

    @inline(__always)
    mutating func append(_ node: TapeNode) {
        if count == capacity { grow() }
        (base + count).initialize(to: node)
        count += 1
    }

    @inline(never)
    private mutating func grow() {
        let grown = UnsafeMutablePointer<TapeNode>.allocate(capacity: capacity * 2)
        grown.moveInitialize(from: base, count: count)
        base.deallocate()
        base = grown
        capacity *= 2
    }

    subscript(index: Int) -> TapeNode {
        get {
            precondition(index >= 0 && index < count, "a tape node out of range")
            return base[index]
        }
        nonmutating set {
            precondition(index >= 0 && index < count, "a tape node out of range")
            base[index] = newValue
        }
    }

    func deallocate() { base.deallocate() }
}

/// The variables parsed once into a flat list of nodes, read by the decoders below.
///
/// A tape belongs to one call on one thread, and no access to its fields overlaps another: they are
/// `@exclusivity(unchecked)`, as the runtime's check of each access cost a quarter of a wide row's decoding.
final class JSONTape {
    let bytes: [UInt8]
    @exclusivity(unchecked) private(set) var nodes: TapeNodes
    /// Set when the shortcut met something only `JSONDecoder` may decide.
    @exclusivity(unchecked) var gaveUp = false
    /// Whether a number anywhere in the document has an exponent or more than 40 characters: `JSONDecoder` refuses
    /// the ones past a `Double`'s range even where nobody reads them, as in a dictionary's ignored members.
    @exclusivity(unchecked) private(set) var holdsNumbersForFoundation = false

    static let maximumDepth = 256

    init?(parsing input: UnsafeBufferPointer<UInt8>) {
        bytes = input.isEmpty ? Array("{}".utf8) : Array(input)
        // A member of a row (`"name": 1.25,`) takes two nodes and most often eight bytes or more: one allocation.
        nodes = TapeNodes(capacity: max(16, bytes.count / 4))
        var position = 0
        guard parseValue(&position, depth: 0) else { return nil }
        skipWhitespace(&position)
        guard position == bytes.count else { return nil }
    }

    deinit {
        nodes.deallocate()
    }

    func giveUp() -> GaveUp {
        gaveUp = true
        return GaveUp()
    }

    // MARK: Parsing

    private func skipWhitespace(_ position: inout Int) {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private func parseValue(_ position: inout Int, depth: Int) -> Bool {
        skipWhitespace(&position)
        guard position < bytes.count, depth < Self.maximumDepth else { return false }
        switch bytes[position] {
        case UInt8(ascii: "{"): return parseContainer(&position, depth: depth, kind: .object)
        case UInt8(ascii: "["): return parseContainer(&position, depth: depth, kind: .array)
        case UInt8(ascii: "\""): return parseString(&position)
        case UInt8(ascii: "t"): return parseLiteral(&position, "true", .bool)
        case UInt8(ascii: "f"): return parseLiteral(&position, "false", .bool)
        case UInt8(ascii: "n"): return parseLiteral(&position, "null", .null)
        default: return parseNumber(&position)
        }
    }

    private func parseLiteral(_ position: inout Int, _ literal: StaticString, _ kind: TapeNode.Kind) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count else { return false }
        for offset in 0..<count where bytes[position + offset] != literal.utf8Start[offset] { return false }
        nodes.append(TapeNode(kind: kind, start: position, end: position + count, next: nodes.count + 1, count: 0))
        position += count
        return true
    }

    private func parseContainer(_ position: inout Int, depth: Int, kind: TapeNode.Kind) -> Bool {
        let index = nodes.count
        let start = position
        nodes.append(TapeNode(kind: kind, start: start, end: start, next: 0, count: 0))
        let close = kind == .object ? UInt8(ascii: "}") : UInt8(ascii: "]")
        position += 1
        skipWhitespace(&position)
        var count = 0
        if position < bytes.count, bytes[position] == close {
            position += 1
        } else {
            while true {
                if kind == .object {
                    skipWhitespace(&position)
                    guard position < bytes.count, bytes[position] == UInt8(ascii: "\""), parseString(&position) else { return false }
                    skipWhitespace(&position)
                    guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { return false }
                    position += 1
                }
                guard parseValue(&position, depth: depth + 1) else { return false }
                count += 1
                skipWhitespace(&position)
                guard position < bytes.count else { return false }
                if bytes[position] == UInt8(ascii: ",") {
                    position += 1
                } else if bytes[position] == close {
                    position += 1
                    break
                } else {
                    return false
                }
            }
        }
        nodes[index].end = position
        nodes[index].next = nodes.count
        nodes[index].count = count
        return true
    }

    private func parseString(_ position: inout Int) -> Bool {
        let start = position + 1
        var cursor = start
        var escapes = 0
        var nonASCII = false
        let count = bytes.count
        while cursor < count {
            let byte = bytes[cursor]
            if byte == UInt8(ascii: "\"") {
                // Every string is checked, keys and ignored members too: JSONDecoder refuses invalid UTF-8 anywhere.
                if nonASCII, !Self.isValidUTF8(bytes[start..<cursor]) { return false }
                nodes.append(TapeNode(kind: .string, start: start, end: cursor, next: nodes.count + 1, count: escapes))
                position = cursor + 1
                return true
            }
            // Printable ASCII but the backslash, the common byte, with one test more.
            if byte &- 0x20 < 0x60, byte != UInt8(ascii: "\\") {
                cursor += 1
            } else if byte >= 0x80 {
                nonASCII = true
                cursor += 1
            } else if byte == UInt8(ascii: "\\") {
                // Escapes are checked here, where every string passes, ignored members included.
                guard let length = escapeLength(at: cursor) else { return false }
                escapes += 1
                cursor += length
            } else {
                return false
            }
        }
        return false
    }

    /// The length of the valid escape at `position` (a backslash): 2, 6 for `\uXXXX`, 12 for a surrogate
    /// pair; `nil` for anything else, unpaired surrogates included, which JSONDecoder then judges.
    private func escapeLength(at position: Int) -> Int? {
        guard position + 1 < bytes.count else { return nil }
        switch bytes[position + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
            UInt8(ascii: "r"), UInt8(ascii: "t"):
            return 2
        case UInt8(ascii: "u"):
            guard let unit = hexQuad(at: position + 2, end: bytes.count) else { return nil }
            switch unit {
            case 0xD800..<0xDC00:
                guard position + 12 <= bytes.count, bytes[position + 6] == UInt8(ascii: "\\"), bytes[position + 7] == UInt8(ascii: "u"),
                    let low = hexQuad(at: position + 8, end: bytes.count), (0xDC00..<0xE000).contains(low)
                else { return nil }
                return 12
            case 0xDC00..<0xE000: return nil
            default: return 6
            }
        default:
            return nil
        }
    }

    static func isValidUTF8(_ bytes: ArraySlice<UInt8>) -> Bool {
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    private func parseNumber(_ position: inout Int) -> Bool {
        let start = position
        let count = bytes.count
        var cursor = position
        // The digits' value as they are read (leading zeros included, which add nothing); it is the number's exact
        // significand when there are at most 19 digits (10^19 < 2^64), and is not used otherwise.
        var significand: UInt64 = 0
        func digits() -> Int {
            let first = cursor
            while cursor < count {
                let digit = bytes[cursor] &- UInt8(ascii: "0")
                guard digit < 10 else { break }
                significand = significand &* 10 &+ UInt64(digit)
                cursor += 1
            }
            return cursor - first
        }
        let negative = cursor < count && bytes[cursor] == UInt8(ascii: "-")
        if negative { cursor += 1 }
        let integerStart = cursor
        let integerDigits = digits()
        guard integerDigits > 0, integerDigits == 1 || bytes[integerStart] != UInt8(ascii: "0") else { return false }
        var fractionDigits = 0
        if cursor < count, bytes[cursor] == UInt8(ascii: ".") {
            cursor += 1
            fractionDigits = digits()
            guard fractionDigits > 0 else { return false }
        }
        let hasExponent = cursor < count && bytes[cursor] | 0x20 == UInt8(ascii: "e")
        if hasExponent {
            cursor += 1
            if cursor < count, bytes[cursor] == UInt8(ascii: "+") || bytes[cursor] == UInt8(ascii: "-") { cursor += 1 }
            guard digits() > 0 else { return false }
        }
        if hasExponent || cursor - start > 40 { holdsNumbersForFoundation = true }
        var node = TapeNode(kind: .number, start: start, end: cursor, next: nodes.count + 1, count: 0)
        if !hasExponent, integerDigits + fractionDigits <= 19, significand <= 1 << 53, fractionDigits <= 22 {
            // An exact significand and power of ten: one correctly rounded division (Clinger's fast path), the value
            // `double(at:)` computes, and Foundation's.
            let magnitude = Double(significand) / Self.powersOfTen[fractionDigits]
            node.exactValue = negative ? -magnitude : magnitude
        }
        nodes.append(node)
        position = cursor
        return true
    }

    // MARK: Reading values

    func node(_ index: Int) -> TapeNode { nodes[index] }

    /// The keys of wide objects by their bytes, built on the first lookup in each (docs/models.md, "Wide rows"):
    /// searched in order, a struct of 500 fields would cost 125,000 key comparisons a row.
    @exclusivity(unchecked) private var keyIndexes: [Int: KeyIndex] = [:]
    /// The coding paths of the keyed containers below the top, numbered from 1 (0 is the top's, `[]`).
    @exclusivity(unchecked) private var codingPaths: [[any CodingKey]] = []

    /// The number a keyed container keeps for `path`.
    func pathNumber(_ path: [any CodingKey]) -> Int {
        guard !path.isEmpty else { return 0 }
        codingPaths.append(path)
        return codingPaths.count
    }

    func codingPath(_ number: Int) -> [any CodingKey] { number == 0 ? [] : codingPaths[number - 1] }

    /// The index of the object looked into last: a struct's fields are asked for one after the other.
    @exclusivity(unchecked) private var lastIndexed: (object: Int, keys: KeyIndex)?
    /// Objects up to this many members are searched in order: faster than hashing the key.
    static let indexedObjectMembers = 16
    /// The key found last in an indexed object: a struct's fields are asked for in the order they are declared,
    /// most often the row's, so the key after it is compared first, before any hashing.
    @exclusivity(unchecked) private var lastFound: (object: Int, key: Int) = (-1, 0)

    /// The value of `key` in the object at `index`; the first one when a key repeats, as `JSONDecoder` does.
    func member(_ key: String, in index: Int) -> Int? {
        if nodes[index].count > Self.indexedObjectMembers {
            if lastIndexed?.object != index {
                if keyIndexes[index] == nil { keyIndexes[index] = KeyIndex(tape: self, object: index) }
                lastIndexed = (index, keyIndexes[index]!)
            }
            // The next key of the object is the first of its name when no key repeats.
            let guess = lastFound.object == index ? nodes[lastFound.key + 1].next : index + 1
            var key = key
            if guess < nodes[index].next, lastIndexed!.keys.unique, key.withUTF8({ keyBytesEqual(guess, $0) }) {
                lastFound = (index, guess)
                return guess + 1
            }
            if let lookup = lastIndexed!.keys.lookup(key, in: self) {
                if let found = lookup { lastFound = (index, found) }
                return lookup.map { $0 + 1 }
            }
        }
        var cursor = index + 1
        let end = nodes[index].next
        while cursor < end {
            if keyEquals(cursor, key) { return cursor + 1 }
            cursor = nodes[cursor + 1].next
        }
        return nil
    }

    /// Whether the key at `index` holds exactly `bytes` (a key without escapes).
    func keyBytesEqual(_ index: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let node = nodes[index]
        guard node.end - node.start == bytes.count else { return false }
        return self.bytes.withUnsafeBufferPointer { all in
            let key = all.baseAddress! + node.start
            // A row's names are short: compared in place, faster than the call to memcmp.
            guard bytes.count <= 16 else { return memcmp(key, bytes.baseAddress!, bytes.count) == 0 }
            for offset in 0..<bytes.count where key[offset] != bytes[offset] { return false }
            return true
        }
    }

    /// The bytes of the key at `index` (a key without escapes).
    func withKeyBytes<Result>(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        let node = nodes[index]
        return bytes.withUnsafeBufferPointer { all in body(UnsafeBufferPointer(rebasing: all[node.start..<node.end])) }
    }

    /// Whether the key at `index` holds escapes: its bytes are then not its text.
    func keyHasEscapes(_ index: Int) -> Bool { nodes[index].count > 0 }

    /// Calls `body` with each member of the object at `index`, in document order: its key's node and its value's.
    func forEachMember(of index: Int, _ body: (_ key: Int, _ value: Int) throws -> Void) rethrows {
        var cursor = index + 1
        let end = nodes[index].next
        while cursor < end {
            try body(cursor, cursor + 1)
            cursor = nodes[cursor + 1].next
        }
    }

    private func keyEquals(_ index: Int, _ key: String) -> Bool {
        let node = nodes[index]
        if node.count > 0 { return (try? string(at: index)) == key }
        let length = node.end - node.start
        let matched = key.utf8.withContiguousStorageIfAvailable { utf8 -> Bool in
            guard utf8.count == length else { return false }
            for offset in 0..<length where bytes[node.start + offset] != utf8[offset] { return false }
            return true
        }
        if let matched { return matched }
        return key.utf8.elementsEqual(bytes[node.start..<node.end])
    }

    /// The key indices of the object at `index`, in document order (each key's value follows it).
    func memberKeys(of index: Int) -> [Int] { children(of: index) { nodes[$0 + 1].next } }

    /// The element indices of the array at `index`.
    func elements(of index: Int) -> [Int] { children(of: index) { nodes[$0].next } }

    private func children(of index: Int, after: (Int) -> Int) -> [Int] {
        var children: [Int] = []
        children.reserveCapacity(nodes[index].count)
        var cursor = index + 1
        while cursor < nodes[index].next {
            children.append(cursor)
            cursor = after(cursor)
        }
        return children
    }

    func string(at index: Int) throws -> String {
        let node = nodes[index]
        if node.count == 0 {
            return try bytes.withUnsafeBufferPointer { all in
                let text = UnsafeBufferPointer(rebasing: all[node.start..<node.end])
                // ASCII (keys, most values) needs no validation; `String(validating:)` is generic and slow. Copied into a
                // new string's storage: a quarter fewer instructions than `String(decoding:as:)`.
                if !text.contains(where: { $0 >= 0x80 }) {
                    return String(unsafeUninitializedCapacity: text.count) { $0.initialize(fromContentsOf: text) }
                }
                guard let text = String(validating: text, as: UTF8.self) else { throw giveUp() }
                return text
            }
        }
        let text = bytes.withUnsafeBytes { all in JSON.unescape(UnsafeRawBufferPointer(rebasing: all[node.start..<node.end])) }
        guard let text else { throw giveUp() }
        return text
    }

    private func hexQuad(at position: Int, end: Int) -> UInt32? {
        guard position + 4 <= end else { return nil }
        return JSON.hexQuad(bytes[position..<position + 4])
    }

    /// A number's text split into its parts; `nil` parts are absent.
    private struct NumberParts {
        var negative = false
        var significand: UInt64 = 0
        var significantDigits = 0
        var fractionDigits = 0
        var hasFraction = false
        var hasExponent = false
    }

    private func parts(of node: TapeNode) -> NumberParts {
        var parts = NumberParts()
        var cursor = node.start
        if bytes[cursor] == UInt8(ascii: "-") {
            parts.negative = true
            cursor += 1
        }
        var inFraction = false
        while cursor < node.end {
            let byte = bytes[cursor]
            if byte == UInt8(ascii: ".") {
                inFraction = true
                parts.hasFraction = true
            } else if byte | 0x20 == UInt8(ascii: "e") {
                parts.hasExponent = true
                break
            } else {
                if parts.significantDigits > 0 || byte != UInt8(ascii: "0") {
                    parts.significantDigits += 1
                    if parts.significantDigits <= 19 {
                        parts.significand = parts.significand &* 10 &+ UInt64(byte - UInt8(ascii: "0"))
                    }
                }
                if inFraction { parts.fractionDigits += 1 }
            }
            cursor += 1
        }
        return parts
    }

    private static let powersOfTen: [Double] = (0...22).map { exponent in
        var power = 1.0
        for _ in 0..<exponent { power *= 10 }
        return power
    }

    func double(at index: Int, path: @autoclosure () -> [any CodingKey]) throws -> Double {
        let node = try expect(.number, at: index, as: Double.self, path: path())
        if node.exact { return node.exactValue }
        let parts = parts(of: node)
        if !parts.hasExponent, parts.significantDigits <= 15, parts.fractionDigits <= 22 {
            // Exact significand and power of ten: one correctly rounded division (Clinger's fast path).
            let magnitude = Double(parts.significand) / Self.powersOfTen[parts.fractionDigits]
            return parts.negative ? -magnitude : magnitude
        }
        guard !parts.hasExponent, node.end - node.start <= 40,
            let value = Double(String(decoding: bytes[node.start..<node.end], as: UTF8.self)),
            value.isFinite, value != 0 || parts.significantDigits == 0
        else { throw giveUp() }
        return value
    }

    func float(at index: Int, path: @autoclosure () -> [any CodingKey]) throws -> Float {
        let node = try expect(.number, at: index, as: Float.self, path: path())
        let parts = parts(of: node)
        guard !parts.hasExponent, parts.significantDigits <= 7 else { throw giveUp() }
        return Float(try double(at: index, path: path()))
    }

    func integer<Integer: FixedWidthInteger>(at index: Int, as _: Integer.Type, path: @autoclosure () -> [any CodingKey]) throws -> Integer {
        let node = try expect(.number, at: index, as: Integer.self, path: path())
        var cursor = node.start
        let negative = bytes[cursor] == UInt8(ascii: "-")
        if negative { cursor += 1 }
        var value: Integer = 0
        while cursor < node.end {
            let byte = bytes[cursor]
            if byte == UInt8(ascii: ".") {
                // `JSONDecoder` reads 2.0 as 2 and refuses 2.5; an exponent is its to judge.
                let fraction = bytes[(cursor + 1)..<node.end]
                guard fraction.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { throw giveUp() }
                guard fraction.allSatisfy({ $0 == UInt8(ascii: "0") }) else {
                    throw DecodingError.dataCorrupted(.init(codingPath: path(), debugDescription: "not an integer"))
                }
                break
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { throw giveUp() }
            let digit = Integer(byte - UInt8(ascii: "0"))
            let (shifted, overflowMultiplying) = value.multipliedReportingOverflow(by: 10)
            let (next, overflowAdding) =
                negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
            guard !overflowMultiplying, !overflowAdding else { throw giveUp() }
            value = next
            cursor += 1
        }
        return value
    }

    func bool(at index: Int, path: @autoclosure () -> [any CodingKey]) throws -> Bool {
        let node = try expect(.bool, at: index, as: Bool.self, path: path())
        return bytes[node.start] == UInt8(ascii: "t")
    }

    func string(at index: Int, path: @autoclosure () -> [any CodingKey]) throws -> String {
        _ = try expect(.string, at: index, as: String.self, path: path())
        return try string(at: index)
    }

    /// The node at `index` when it has `kind`; otherwise the error `JSONDecoder` throws in its place.
    func expect(_ kind: TapeNode.Kind, at index: Int, as type: Any.Type, path: @autoclosure () -> [any CodingKey]) throws -> TapeNode {
        let node = nodes[index]
        guard node.kind == kind else {
            if node.kind == .null {
                throw DecodingError.valueNotFound(type, .init(codingPath: path(), debugDescription: "found null instead"))
            }
            throw DecodingError.typeMismatch(type, .init(codingPath: path(), debugDescription: "found \(node.kind) instead"))
        }
        return node
    }

    // MARK: Decoding

    func decode<Value: Decodable>(_ type: Value.Type, at index: Int, path: [any CodingKey]) throws -> Value {
        if Value.self == Double.self { return try double(at: index, path: path) as! Value }
        if Value.self == String.self { return try string(at: index, path: path) as! Value }
        if Value.self == Int.self { return try integer(at: index, as: Int.self, path: path) as! Value }
        if Value.self == Bool.self { return try bool(at: index, path: path) as! Value }
        if Value.self == JSON.self { return try json(at: index) as! Value }
        if Value.self == [String: JSON].self {
            guard case .object(let members) = try json(at: index) else {
                throw DecodingError.typeMismatch(type, .init(codingPath: path, debugDescription: "not an object"))
            }
            return members as! Value
        }
        if Value.self == TreeModel.Row.self, index == 0, nodes[0].kind == .object { return TreeModel.Row(tape: self) as! Value }
        if type is any ReservedForJSONDecoder.Type { throw giveUp() }
        return try Value(from: TapeDecoder(tape: self, index: index, codingPath: path))
    }

    /// The whole value as `JSON`, as `JSON.init(from:)` would decode it.
    func json(at index: Int) throws -> JSON {
        let node = nodes[index]
        switch node.kind {
        case .null: return .null
        case .bool: return .bool(bytes[node.start] == UInt8(ascii: "t"))
        case .number: return .number(try double(at: index, path: []))
        case .string: return .string(try string(at: index))
        case .array: return .array(try elements(of: index).map { try json(at: $0) })
        case .object:
            var members: [String: JSON] = [:]
            members.reserveCapacity(node.count)
            try forEachMember(of: index) { key, value in
                // A number read while parsing, the common member, without the call for any value.
                let node = nodes[value]
                let member = node.exact ? .number(node.exactValue) : try json(at: value)
                guard members.updateValue(member, forKey: try string(at: key)) == nil else { throw giveUp() }
            }
            return .object(members)
        }
    }
}

/// The keys of one object by their bytes (open addressing, FNV-1a), the first of a repeated key kept, as
/// `JSONTape.member` finds it. An object with an escaped key has no index: it is searched in order.
struct KeyIndex {
    /// Per bucket, the key's node index + 1, or 0 when empty.
    private var buckets: [Int32]
    private var usable: Bool
    /// No key of the object repeats (and none has escapes): the key found is the only one of its name.
    private(set) var unique = false

    init(tape: JSONTape, object: Int) {
        let members = tape.node(object).count
        buckets = [Int32](repeating: 0, count: max(4, 1 << (Int.bitWidth - (2 * members).leadingZeroBitCount)))
        usable = members < Int32.max
        unique = usable
        guard usable else { return }
        let mask = buckets.count - 1
        // One walk over the keys and one view of the bytes: a closure or an array of keys per row cost as much as the
        // hashing itself.
        tape.bytes.withUnsafeBufferPointer { all in
            buckets.withUnsafeMutableBufferPointer { buckets in
                var key = object + 1
                let end = tape.node(object).next
                while key < end {
                    let node = tape.node(key)
                    guard node.count == 0 else {
                        // An escaped key: its bytes are not its text, and the object is searched in order.
                        usable = false
                        unique = false
                        return
                    }
                    let bytes = UnsafeBufferPointer(rebasing: all[node.start..<node.end])
                    var bucket = Int(truncatingIfNeeded: Self.hash(bytes)) & mask
                    var repeated = false
                    while buckets[bucket] != 0 {
                        if tape.keyBytesEqual(Int(buckets[bucket]) - 1, bytes) {
                            repeated = true
                            break
                        }
                        bucket = (bucket + 1) & mask
                    }
                    if repeated {
                        unique = false
                    } else {
                        buckets[bucket] = Int32(key + 1)
                    }
                    key = tape.node(key + 1).next
                }
            }
        }
    }

    /// FNV-1a, as the tree models' `FeatureIndex` hashes feature names.
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 { FeatureIndex.hash(bytes).value }

    /// `.some(key's node index)` or `.some(nil)` when the object has no such key; `nil` when this index cannot tell.
    func lookup(_ key: String, in tape: JSONTape) -> Int?? {
        guard usable else { return nil }
        var key = key
        return key.withUTF8 { bytes -> Int?? in
            let mask = buckets.count - 1
            var bucket = Int(truncatingIfNeeded: Self.hash(bytes)) & mask
            while true {
                let entry = Int(buckets[bucket])
                guard entry != 0 else { return .some(nil) }
                if tape.keyBytesEqual(entry - 1, bytes) { return .some(entry - 1) }
                bucket = (bucket + 1) & mask
            }
        }
    }
}

/// Types `JSONDecoder` decodes its own way (base64 `Data`, `Decimal` from the number's text, …).
protocol ReservedForJSONDecoder {}

extension Data: ReservedForJSONDecoder {}
extension Date: ReservedForJSONDecoder {}
extension URL: ReservedForJSONDecoder {}
extension Decimal: ReservedForJSONDecoder {}

/// A `Decoder` over one node of a tape.
struct TapeDecoder: Decoder, SingleValueDecodingContainer {
    let tape: JSONTape
    let index: Int
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy _: Key.Type) throws -> KeyedDecodingContainer<Key> {
        _ = try tape.expect(.object, at: index, as: [String: Any].self, path: codingPath)
        return KeyedDecodingContainer(TapeKeyedContainer<Key>(tape: tape, index: index, path: tape.pathNumber(codingPath)))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        _ = try tape.expect(.array, at: index, as: [Any].self, path: codingPath)
        return TapeUnkeyedContainer(tape: tape, elements: tape.elements(of: index), codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { tape.node(index).kind == .null }
    func decode(_: Bool.Type) throws -> Bool { try tape.bool(at: index, path: codingPath) }
    func decode(_: String.Type) throws -> String { try tape.string(at: index, path: codingPath) }
    func decode(_: Double.Type) throws -> Double { try tape.double(at: index, path: codingPath) }
    func decode(_: Float.Type) throws -> Float { try tape.float(at: index, path: codingPath) }
    func decode(_: Int.Type) throws -> Int { try tape.integer(at: index, as: Int.self, path: codingPath) }
    func decode(_: Int8.Type) throws -> Int8 { try tape.integer(at: index, as: Int8.self, path: codingPath) }
    func decode(_: Int16.Type) throws -> Int16 { try tape.integer(at: index, as: Int16.self, path: codingPath) }
    func decode(_: Int32.Type) throws -> Int32 { try tape.integer(at: index, as: Int32.self, path: codingPath) }
    func decode(_: Int64.Type) throws -> Int64 { try tape.integer(at: index, as: Int64.self, path: codingPath) }
    func decode(_: UInt.Type) throws -> UInt { try tape.integer(at: index, as: UInt.self, path: codingPath) }
    func decode(_: UInt8.Type) throws -> UInt8 { try tape.integer(at: index, as: UInt8.self, path: codingPath) }
    func decode(_: UInt16.Type) throws -> UInt16 { try tape.integer(at: index, as: UInt16.self, path: codingPath) }
    func decode(_: UInt32.Type) throws -> UInt32 { try tape.integer(at: index, as: UInt32.self, path: codingPath) }
    func decode(_: UInt64.Type) throws -> UInt64 { try tape.integer(at: index, as: UInt64.self, path: codingPath) }
    func decode<Value: Decodable>(_ type: Value.Type) throws -> Value {
        try tape.decode(type, at: index, path: codingPath)
    }
}

/// The members of one object, looked up by key.
///
/// Its one reference is the tape (its coding path is kept there): the standard library's type-erased container copies
/// it twice a field, and each reference it held cost a retain and a release a field.
struct TapeKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let tape: JSONTape
    let index: Int
    /// The coding path's number in the tape.
    let path: Int

    var codingPath: [any CodingKey] { tape.codingPath(path) }

    var allKeys: [Key] {
        var seen = Set<String>()
        var keys: [Key] = []
        for keyIndex in tape.memberKeys(of: index) {
            guard let name = try? tape.string(at: keyIndex) else { return [] }
            // A repeated key: which value a dictionary keeps is JSONDecoder's call.
            guard seen.insert(name).inserted else {
                _ = tape.giveUp()
                return []
            }
            if let key = Key(stringValue: name) { keys.append(key) }
        }
        return keys
    }

    func contains(_ key: Key) -> Bool { tape.member(key.stringValue, in: index) != nil }

    private func value(_ key: Key) throws -> Int {
        guard let member = tape.member(key.stringValue, in: index) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "No value for \(key.stringValue)"))
        }
        return member
    }

    func decodeNil(forKey key: Key) throws -> Bool { tape.node(try value(key)).kind == .null }
    func decode(_: Bool.Type, forKey key: Key) throws -> Bool { try tape.bool(at: try value(key), path: codingPath + [key]) }
    func decode(_: String.Type, forKey key: Key) throws -> String {
        try tape.string(at: try value(key), path: codingPath + [key])
    }
    func decode(_: Double.Type, forKey key: Key) throws -> Double {
        try tape.double(at: try value(key), path: codingPath + [key])
    }
    func decode(_: Float.Type, forKey key: Key) throws -> Float { try tape.float(at: try value(key), path: codingPath + [key]) }
    func decode(_: Int.Type, forKey key: Key) throws -> Int { try integer(key) }
    func decode(_: Int8.Type, forKey key: Key) throws -> Int8 { try integer(key) }
    func decode(_: Int16.Type, forKey key: Key) throws -> Int16 { try integer(key) }
    func decode(_: Int32.Type, forKey key: Key) throws -> Int32 { try integer(key) }
    func decode(_: Int64.Type, forKey key: Key) throws -> Int64 { try integer(key) }
    func decode(_: UInt.Type, forKey key: Key) throws -> UInt { try integer(key) }
    func decode(_: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(key) }
    func decode(_: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(key) }
    func decode(_: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(key) }
    func decode(_: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(key) }
    func decode<Value: Decodable>(_ type: Value.Type, forKey key: Key) throws -> Value {
        try tape.decode(type, at: try value(key), path: codingPath + [key])
    }

    private func integer<Integer: FixedWidthInteger>(_ key: Key) throws -> Integer {
        try tape.integer(at: try value(key), as: Integer.self, path: codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try TapeDecoder(tape: tape, index: try value(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try TapeDecoder(tape: tape, index: try value(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { throw tape.giveUp() }
    func superDecoder(forKey _: Key) throws -> any Decoder { throw tape.giveUp() }
}

/// The elements of one array, read in order.
struct TapeUnkeyedContainer: UnkeyedDecodingContainer {
    let tape: JSONTape
    let elements: [Int]
    let codingPath: [any CodingKey]
    private(set) var currentIndex = 0

    init(tape: JSONTape, elements: [Int], codingPath: [any CodingKey]) {
        self.tape = tape
        self.elements = elements
        self.codingPath = codingPath
    }

    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    private func current(_ type: Any.Type) throws -> Int {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: codingPath, debugDescription: "Unkeyed container is at end."))
        }
        return elements[currentIndex]
    }

    private var elementPath: [any CodingKey] { codingPath + [ElementKey(intValue: currentIndex)] }

    mutating func decodeNil() throws -> Bool {
        guard tape.node(try current(Never.self)).kind == .null else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<Value: Decodable>(_ type: Value.Type) throws -> Value {
        let value = try tape.decode(type, at: try current(type), path: elementPath)
        currentIndex += 1
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        let container = try TapeDecoder(tape: tape, index: try current(type), codingPath: elementPath).container(keyedBy: type)
        currentIndex += 1
        return container
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let container = try TapeDecoder(tape: tape, index: try current([Any].self), codingPath: elementPath).unkeyedContainer()
        currentIndex += 1
        return container
    }

    mutating func superDecoder() throws -> any Decoder { throw tape.giveUp() }
}

/// An array position in a coding path, as `[3]` in an error message.
struct ElementKey: CodingKey {
    let intValue: Int?
    var stringValue: String { "Index \(intValue ?? 0)" }
    init(intValue: Int) { self.intValue = intValue }
    init?(stringValue _: String) { nil }
}
