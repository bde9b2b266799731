/// The body of an infer request of the Open Inference Protocol (docs/http-api.md, "Open Inference Protocol v2"),
/// validated, with where its parts lie: the `inputs`, `outputs` and `id` members, and each input tensor's `name`,
/// `datatype`, `shape` and the elements of its `data`. The first of a repeated key counts, as everywhere in a body.
public struct LocatedTensors: Equatable, Sendable {
    public typealias Member = JSONParser.ObjectMember

    public var inputs, outputs, id: Member?
    /// The elements of `inputs` when it is an array.
    public var tensors: [Tensor] = []
    /// The elements of every tensor's `data`, one tensor's after the other's.
    public var values: [Member] = []

    public struct Tensor: Equatable, Sendable {
        /// The tensor itself; its members below when it is an object.
        public var tensor: Member
        public var name, datatype, shape, data: Member?
        /// Where the elements of `data` are in `values`: none when it is not an array.
        public var values: Range<Int>
    }

    /// The keys of a tensor's members above, as their bytes.
    static let tensorKeys: [[UInt8]] = ["name", "datatype", "shape", "data"].map { Array($0.utf8) }
    /// The body's members above, as their text and their bytes.
    static let topKeys = ["inputs", "outputs", "id"]
    static let topKeyBytes: [[UInt8]] = topKeys.map { Array($0.utf8) }

    /// Keeps `value` as the tensor's member at `field` of `tensorKeys` when it has none yet.
    static func keep(_ value: Member, field: Int?, in tensor: inout Tensor) {
        switch field {
        case 0 where tensor.name == nil: tensor.name = value
        case 1 where tensor.datatype == nil: tensor.datatype = value
        case 2 where tensor.shape == nil: tensor.shape = value
        case 3 where tensor.data == nil: tensor.data = value
        default: break
        }
    }
}

extension JSONParser {
    /// Validates an infer request's body and locates its tensors; throws as `locateObjectMembers` does (`.notAnObject`
    /// for a body that is JSON but not an object).
    ///
    /// The usual body (plain keys, each tensor an object whose `data` holds no containers) is read in one pass by
    /// `locateTensorsQuickly`; any other, or an invalid one, is validated by `locateObjectMembers` and its tensors
    /// then read from the valid bytes. Both locate the same (the fuzz target `json-parser` checks it).
    public static func locateTensors(in bytes: UnsafeRawBufferPointer) throws(JSONParseError) -> LocatedTensors {
        if let located = locateTensorsQuickly(in: bytes) { return located }
        return try locateTensorsExactly(in: bytes)
    }

    /// The general reader: the body validated first, then each tensor read from its bytes.
    static func locateTensorsExactly(in bytes: UnsafeRawBufferPointer) throws(JSONParseError) -> LocatedTensors {
        let (members, elements) = try locateObjectMembers(LocatedTensors.topKeys, in: bytes, elementsOf: 0)
        var located = LocatedTensors(inputs: members[0], outputs: members[1], id: members[2])
        for element in elements {
            var tensor = LocatedTensors.Tensor(tensor: element, values: located.values.count..<located.values.count)
            if element.kind == .object {
                forEachMember(ofObjectAt: element.range, in: bytes) { key, value in
                    let field = LocatedTensors.tensorKeys.firstIndex { string(key, in: bytes, equals: $0) }
                    LocatedTensors.keep(value, field: field, in: &tensor)
                }
            }
            if let data = tensor.data, data.kind == .array {
                forEachElement(ofArrayAt: data.range, in: bytes) { located.values.append($0) }
                tensor.values = tensor.values.lowerBound..<located.values.count
            }
            located.tensors.append(tensor)
        }
        return located
    }

    /// The usual body in one pass over its bytes, validated as `skipValueQuickly` validates; `nil` for a body it
    /// leaves to `locateTensorsExactly`: a key with an escape or past ASCII, `inputs` missing or not a non-empty array
    /// of objects, a container in a tensor's `data`, and anything `skipValueQuickly` leaves (an invalid body among them).
    static func locateTensorsQuickly(in bytes: UnsafeRawBufferPointer) -> LocatedTensors? {
        guard let base = bytes.baseAddress else { return nil }
        var cursor = QuickCursor(parser: JSONParser(bytes), base: base, end: bytes.count, position: 0)
        var located = LocatedTensors()
        // Room for the usual body's tensors (about 60 bytes each, one value each), within bounds.
        located.tensors.reserveCapacity(min(bytes.count / 48, 1024))
        located.values.reserveCapacity(min(bytes.count / 48, 4096))
        cursor.passSpaces()
        guard cursor.byte == UInt8(ascii: "{") else { return nil }
        cursor.position += 1
        while true {
            guard let key = cursor.passPlainKey() else { return nil }
            cursor.passSpaces()
            let start = cursor.position
            guard let first = cursor.byte else { return nil }
            let field = LocatedTensors.topKeyBytes.firstIndex { cursor.parser.stringEquals(key, $0) }
            if field == 0, located.inputs == nil {
                guard first == UInt8(ascii: "["), cursor.passTensors(into: &located) else { return nil }
            } else {
                guard cursor.skipValue(depth: 1) else { return nil }
            }
            let member = ObjectMember(range: start..<cursor.position, kind: ValueKind(firstByte: first))
            switch field {
            case 0 where located.inputs == nil: located.inputs = member
            case 1 where located.outputs == nil: located.outputs = member
            case 2 where located.id == nil: located.id = member
            default: break
            }
            guard let more = cursor.passSeparator(closing: UInt8(ascii: "}")) else { return nil }
            if !more { break }
        }
        cursor.passSpaces()
        guard cursor.position == bytes.count, located.inputs != nil else { return nil }
        return located
    }
}

extension JSONParser.QuickCursor {
    typealias Member = JSONParser.ObjectMember

    /// Past a plain key (ASCII without an escape or a control character), the white space around it and its colon:
    /// the key's token (quotes included); `nil` for any other key, or none.
    mutating func passPlainKey() -> Range<Int>? {
        passSpaces()
        guard byte == UInt8(ascii: "\"") else { return nil }
        let start = position
        position += 1
        while position < end {
            if position + 8 <= end {
                let stops = JSONParser.stringStops(in: word(at: position))
                guard stops != 0 else {
                    position += 8
                    continue
                }
                position += stops.trailingZeroBitCount >> 3
            } else {
                let next = byte(at: position)
                guard next == UInt8(ascii: "\"") || next == UInt8(ascii: "\\") || next < 0x20 || next >= 0x80 else {
                    position += 1
                    continue
                }
            }
            guard byte(at: position) == UInt8(ascii: "\"") else { return nil }
            position += 1
            let token = start..<position
            passSpaces()
            guard byte == UInt8(ascii: ":") else { return nil }
            position += 1
            return token
        }
        return nil
    }

    /// Past a tensor's member key, the white space around it and its colon: which of `LocatedTensors.tensorKeys` it
    /// names, 4 for another plain key; `nil` for a key `passPlainKey` leaves. The four keys are compared with the
    /// document's next bytes as words, quotes included, before any other key is read as a string.
    @inline(__always) mutating func passTensorKey() -> Int? {
        passSpaces()
        if position + 16 <= end {
            let first = word(at: position)
            var field = 4
            var length = 0
            if first & 0xFFFF_FFFF_FFFF == Self.word(#""name""#) {
                (field, length) = (0, 6)
            } else if first & 0xFFFF_FFFF_FFFF == Self.word(#""data""#) {
                (field, length) = (3, 6)
            } else if first & 0xFF_FFFF_FFFF_FFFF == Self.word(#""shape""#) {
                (field, length) = (2, 7)
            } else if first == Self.word(#""datatyp"#), word(at: position + 8) & 0xFFFF == Self.word(#"e""#) {
                (field, length) = (1, 10)
            }
            if length > 0 {
                position += length
                passSpaces()
                guard byte == UInt8(ascii: ":") else { return nil }
                position += 1
                return field
            }
        }
        return passOtherTensorKey()
    }

    /// `passTensorKey` for a key it does not compare as words (another key, or one in the document's last bytes).
    @inline(never) mutating func passOtherTensorKey() -> Int? {
        guard let key = passPlainKey() else { return nil }
        return LocatedTensors.tensorKeys.firstIndex { parser.stringEquals(key, $0) } ?? 4
    }

    /// Up to eight ASCII characters as the word `word(at:)` reads them, the first in the lowest byte.
    @inline(__always) static func word(_ text: StaticString) -> UInt64 {
        var word: UInt64 = 0
        for offset in 0..<text.utf8CodeUnitCount { word |= UInt64(text.utf8Start[offset]) << (8 * offset) }
        return word
    }

    /// Past the comma or the `closing` bracket after a member or an element: `true` after a comma, `false` after the
    /// bracket, `nil` for anything else.
    mutating func passSeparator(closing: UInt8) -> Bool? {
        passSpaces()
        guard let next = byte, next == UInt8(ascii: ",") || next == closing else { return nil }
        position += 1
        return next == UInt8(ascii: ",")
    }

    /// Past any value, validated by `skipValueQuickly` as a value `depth` containers down.
    mutating func skipValue(depth: Int) -> Bool {
        var walk = parser
        walk.index = position
        walk.depth = depth
        guard walk.skipValueQuickly() else { return false }
        position = walk.index
        return true
    }

    /// Past the array of tensors at the position, each an object, adding them to `located`; `false` for an empty
    /// array and anything `locateTensorsQuickly` leaves.
    mutating func passTensors(into located: inout LocatedTensors) -> Bool {
        position += 1
        passSpaces()
        guard byte != UInt8(ascii: "]") else { return false }
        while true {
            passSpaces()
            let start = position
            guard byte == UInt8(ascii: "{") else { return false }
            position += 1
            var tensor = LocatedTensors.Tensor(tensor: Member(range: start..<start, kind: .object), values: located.values.count..<located.values.count)
            passSpaces()
            if byte == UInt8(ascii: "}") {
                position += 1
            } else {
                while true {
                    guard let field = passTensorKey() else { return false }
                    passSpaces()
                    let valueStart = position
                    guard let first = byte else { return false }
                    // The usual values first: a name or datatype as a string, the shape `[1]`, the data a list.
                    if (field == 0 || field == 1) && first == UInt8(ascii: "\"") {
                        guard passString() else { return false }
                        LocatedTensors.keep(Member(range: valueStart..<position, kind: .string), field: field, in: &tensor)
                    } else if field == 2, tensor.shape == nil, first == UInt8(ascii: "["), position + 3 <= end,
                        byte(at: position + 1) == UInt8(ascii: "1"), byte(at: position + 2) == UInt8(ascii: "]")
                    {
                        position += 3
                        tensor.shape = Member(range: valueStart..<position, kind: .array)
                    } else if field == 3, tensor.data == nil, first == UInt8(ascii: "[") {
                        guard passData(into: &located.values) else { return false }
                        tensor.values = tensor.values.lowerBound..<located.values.count
                        tensor.data = Member(range: valueStart..<position, kind: .array)
                    } else {
                        // Inside the body, `inputs` and the tensor.
                        guard skipValue(depth: 3) else { return false }
                        LocatedTensors.keep(Member(range: valueStart..<position, kind: JSONParser.ValueKind(firstByte: first)), field: field, in: &tensor)
                    }
                    guard let more = passSeparator(closing: UInt8(ascii: "}")) else { return false }
                    if !more { break }
                }
            }
            tensor.tensor.range = start..<position
            located.tensors.append(tensor)
            guard let more = passSeparator(closing: UInt8(ascii: "]")) else { return false }
            if !more { return true }
        }
    }

    /// Past a tensor's `data` at the position, adding its elements to `values`; `false` for one holding a container,
    /// and anything invalid.
    mutating func passData(into values: inout [Member]) -> Bool {
        position += 1
        passSpaces()
        if byte == UInt8(ascii: "]") {
            position += 1
            return true
        }
        while true {
            passSpaces()
            let start = position
            guard let first = byte else { return false }
            switch first {
            case UInt8(ascii: "\""): guard passString() else { return false }
            case UInt8(ascii: "t"): guard passLiteral("true") else { return false }
            case UInt8(ascii: "f"): guard passLiteral("false") else { return false }
            case UInt8(ascii: "n"): guard passLiteral("null") else { return false }
            case UInt8(ascii: "{"), UInt8(ascii: "["): return false
            default: guard passNumber() else { return false }
            }
            values.append(Member(range: start..<position, kind: JSONParser.ValueKind(firstByte: first)))
            guard let more = passSeparator(closing: UInt8(ascii: "]")) else { return false }
            if !more { return true }
        }
    }
}
