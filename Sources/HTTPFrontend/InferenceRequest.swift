import Foundation
import ServingCore

/// The body of an infer request of the Open Inference Protocol (docs/http-api.md, "Open Inference Protocol v2"), read in
/// one pass over its bytes: input tensor `i` holds variable `name` of every row, shape `[N]` or `[N, 1]`, its data
/// flat (or one list per row, as `[N, 1]` may come); `null` is a missing value.
///
/// Each row is built as the native route's row is sent to the model, the bytes of a variables object
/// (`{"<name>":<value>,...}`), with each name and value copied as it came: no tree of the body, no dictionary per row,
/// so that a row of tensors costs about what the same row costs on the native route (docs/models.md, "Wide rows").
struct InferenceRequest {
    typealias Failure = InferenceProtocolV2.Failure
    typealias Member = JSONParser.ObjectMember

    /// Each row's variables object.
    var rows: [[UInt8]]
    /// The outputs the request names (`outputs[].name`), `nil` for all of them.
    var requested: [String]?
    var id: String?

    static func parse(_ bytes: UnsafeRawBufferPointer, maxRows: Int) -> Result<InferenceRequest, Failure> {
        let located: LocatedTensors
        do {
            located = try JSONParser.locateTensors(in: bytes)
        } catch {
            if case .notAnObject = error.reason { return .failure(Failure(status: 400, message: "the body must be a JSON object with inputs")) }
            return .failure(Failure(status: 400, message: "the body is not JSON: \(error)"))
        }
        var request = InferenceRequest(rows: [])
        if let outputs = located.outputs, outputs.kind == .array {
            request.requested = JSONParser.value(at: outputs.range, in: bytes).array?.compactMap { $0["name"]?.string }
        }
        if let id = located.id, id.kind == .string { request.id = JSONParser.string(id.range, in: bytes) }
        guard located.inputs?.kind == .array, !located.tensors.isEmpty else {
            return .failure(
                Failure(status: 400, message: "the request has no inputs; send one tensor per variable: {\"name\", \"shape\": [N], \"datatype\", \"data\"}"))
        }
        var reader = TensorReader(bytes: bytes, maxRows: maxRows, rowBytes: bytes.count, tensors: located.tensors.count)
        defer { reader.rows.deallocate() }
        let failure = located.values.withUnsafeBufferPointer { values -> Failure? in
            for (position, tensor) in located.tensors.enumerated() {
                if let failure = reader.read(tensor, values: UnsafeBufferPointer(rebasing: values[tensor.values]), position: position) { return failure }
            }
            return nil
        }
        if let failure { return .failure(failure) }
        request.rows = reader.rows.closedRows()
        return .success(request)
    }
}

/// Reads one tensor after the other into the rows' bytes.
private struct TensorReader {
    typealias Failure = InferenceProtocolV2.Failure
    typealias Member = JSONParser.ObjectMember

    let bytes: UnsafeRawBufferPointer
    let maxRows: Int
    /// What each row's bytes reserve: the body's size over the rows.
    let rowBytes: Int
    /// Each row's bytes, made for as many rows as the first tensor has values.
    var rows = RowBuffers()
    var names: TensorNames

    init(bytes: UnsafeRawBufferPointer, maxRows: Int, rowBytes: Int, tensors: Int) {
        self.bytes = bytes
        names = TensorNames(body: bytes, expected: tensors)
        self.maxRows = maxRows
        self.rowBytes = rowBytes
    }

    /// The datatypes the protocol names, as their bytes, each with its kind.
    static let datatypes: [(name: [UInt8], kind: InferenceProtocolV2.TensorKind)] = [
        "FP64", "FP32", "INT64", "INT32", "BOOL", "BYTES", "FP16", "INT8", "INT16", "UINT8", "UINT16", "UINT32", "UINT64",
    ].map { (Array($0.utf8), InferenceProtocolV2.TensorKind($0)!) }

    /// Whether the string token at `token` is `"FP64"`, the usual datatype (the first of `datatypes`), by its bytes.
    static func isFP64(_ token: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Bool {
        token.count == 6 && bytes.loadUnaligned(fromByteOffset: token.lowerBound + 1, as: UInt32.self) == UInt32(littleEndian: 0x3436_5046)
    }

    /// Adds the tensor's values to the rows; the failure when the tensor is not one the protocol allows.
    mutating func read(_ fields: LocatedTensors.Tensor, values elements: UnsafeBufferPointer<Member>, position: Int) -> Failure? {
        guard let nameField = fields.name, nameField.kind == .string else { return Failure(status: 400, message: "input \(position) has no name") }
        // The name as a `String` only for a message.
        var name: String { JSONParser.string(nameField.range, in: bytes) }
        guard names.insert(nameField.range) else {
            return Failure(status: 400, message: "input '\(name)' appears twice; send one tensor per variable")
        }
        guard let datatypeField = fields.datatype, datatypeField.kind == .string,
            let found = Self.isFP64(datatypeField.range, in: bytes)
                ? 0 : Self.datatypes.firstIndex(where: { JSONParser.string(datatypeField.range, in: bytes, equals: $0.name) })
        else {
            return Failure(status: 400, message: "input '\(name)': datatype must be BOOL, BYTES, FP16/32/64, INT8/16/32/64 or UINT8/16/32/64")
        }
        let kind = Self.datatypes[found].kind
        guard let rowCount = shapeRows(fields.shape) else {
            return Failure(status: 400, message: "input '\(name)': shape must be [N] or [N, 1], one value per row")
        }
        guard fields.data?.kind == .array else { return Failure(status: 400, message: "input '\(name)': data must be a list of values") }
        if elements.first?.kind == .array, let inner = Self.unwrapOneValueLists(elements, in: bytes) {
            return inner.withUnsafeBufferPointer { add($0, name: nameField, kind: kind, found: found, rowCount: rowCount, position: position) }
        }
        return add(elements, name: nameField, kind: kind, found: found, rowCount: rowCount, position: position)
    }

    /// Adds a tensor's values, one per row, after its name.
    mutating func add(
        _ values: UnsafeBufferPointer<Member>, name nameField: Member, kind: InferenceProtocolV2.TensorKind, found: Int, rowCount: Int, position: Int
    ) -> Failure? {
        var name: String { JSONParser.string(nameField.range, in: bytes) }
        var datatype: String { String(decoding: Self.datatypes[found].name, as: UTF8.self) }
        guard values.count == rowCount else {
            return Failure(status: 400, message: "input '\(name)': shape says \(rowCount) rows and data holds \(values.count) values")
        }
        guard values.count <= maxRows else {
            return Failure(
                status: 413, message: "the request has \(values.count) rows, and one request scores \(maxRows) at most; split it, or raise MAX_BATCH_ROWS")
        }
        if position == 0 { rows.allocate(count: values.count, reserve: rowBytes / max(1, values.count) + 16) }
        guard rows.count == values.count else {
            return Failure(status: 400, message: "input '\(name)' has \(values.count) rows and the inputs before it \(rows.count); send N values in each")
        }
        let nameToken = UnsafeRawBufferPointer(rebasing: bytes[nameField.range])
        for (row, value) in values.enumerated() {
            rows.appendKey(nameToken, first: position == 0, to: row)
            guard Self.append(value, of: kind, in: bytes, to: row, of: rows) else {
                return Failure(
                    status: 400, message: "input '\(name)', row \(row + 1): \(text(of: value)) is not \(datatype)\(kind.range.map { " (\($0))" } ?? "")")
            }
        }
        return nil
    }

    /// The rows a shape `[N]` or `[N, 1]` says, `nil` for any other shape.
    func shapeRows(_ shape: Member?) -> Int? {
        guard let shape, shape.kind == .array else { return nil }
        // The usual shape, `[1]`, as it came.
        if shape.range.count == 3, bytes[shape.range.lowerBound + 1] == UInt8(ascii: "1") { return 1 }
        var sizes: (count: Int, first: Int, second: Int) = (0, 0, 0)
        var whole = true
        JSONParser.forEachElement(ofArrayAt: shape.range, in: bytes) { size in
            let token = UnsafeRawBufferPointer(rebasing: bytes[size.range])
            guard whole, size.kind == .number, let value = JSONValue.number(Self.wholeNumber(token) ?? JSONParser.number(size.range, in: bytes)).int
            else {
                whole = false
                return
            }
            sizes.count += 1
            if sizes.count == 1 { sizes.first = value } else { sizes.second = value }
        }
        guard whole, sizes.count == 1 || (sizes.count == 2 && sizes.second == 1), sizes.first >= 0 else { return nil }
        return sizes.first
    }

    /// A shape `[N, 1]` may come as one list per row: when every value is a list of one, the values inside; `nil` when
    /// they are not.
    static func unwrapOneValueLists(_ values: UnsafeBufferPointer<Member>, in bytes: UnsafeRawBufferPointer) -> [Member]? {
        var inner: [Member] = []
        inner.reserveCapacity(values.count)
        for value in values {
            guard value.kind == .array else { return nil }
            var count = 0
            JSONParser.forEachElement(ofArrayAt: value.range, in: bytes) { element in
                count += 1
                if count == 1 { inner.append(element) }
            }
            guard count == 1 else { return nil }
        }
        return inner
    }

    /// Appends the value when it fits the datatype: numbers within the float's range, whole numbers within the
    /// integer's, booleans (or 0 and 1), strings, `null` for a missing value; `false` when it does not fit.
    /// (Static: a method of the reader would be called on a copy of it while `row`, one of its rows, is changed.)
    static func append(_ value: Member, of kind: InferenceProtocolV2.TensorKind, in bytes: UnsafeRawBufferPointer, to row: Int, of rows: RowBuffers) -> Bool {
        let token = UnsafeRawBufferPointer(rebasing: bytes[value.range])
        switch (kind, value.kind) {
        case (_, .null), (.bool, .bool), (.bytes, .string):
            rows.append(token, to: row)
            return true
        case (.number(let largest), .number):
            // A valid number is within a double's range: FP64 takes every one.
            guard largest == .greatestFiniteMagnitude || Self.isBelow(token, largest) || JSONParser.number(value.range, in: bytes).magnitude <= largest
            else { return false }
            rows.append(token, to: row)
            return true
        case (.integer(let lowest, let past), .number):
            let number = Self.wholeNumber(token) ?? JSONParser.number(value.range, in: bytes)
            guard number.rounded(.towardZero) == number, number >= lowest, number < past else { return false }
            rows.append(token, to: row)
            return true
        case (.bool, .number):
            let number = JSONParser.number(value.range, in: bytes)
            guard number == 0 || number == 1 else { return false }
            let literal: StaticString = number == 1 ? "true" : "false"
            rows.append(UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount), to: row)
            return true
        default:
            return false
        }
    }

    /// Whether a number token without an exponent has too few digits before its point to reach `largest`: most values
    /// of a float tensor fit without being parsed.
    static func isBelow(_ token: UnsafeRawBufferPointer, _ largest: Double) -> Bool {
        var digits = 0
        for byte in token {
            if byte == UInt8(ascii: ".") { break }
            if byte | 0x20 == UInt8(ascii: "e") { return false }
            if byte != UInt8(ascii: "-") { digits += 1 }
        }
        return digits < 308 && Self.powersOfTen[min(digits, 308)] <= largest
    }

    static let powersOfTen: [Double] = (0...308).map { pow(10, Double($0)) }

    /// The value of a whole number token of at most 15 digits (exact in a `Double`), `nil` for any other.
    static func wholeNumber(_ token: UnsafeRawBufferPointer) -> Double? {
        var value: Int64 = 0
        var negative = false
        var digits = 0
        for byte in token {
            if byte == UInt8(ascii: "-") {
                negative = true
            } else if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits < 15 {
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
                digits += 1
            } else {
                return nil
            }
        }
        return Double(negative ? -value : value)
    }

    /// A value as it came, for a message (cut short past 60 characters).
    func text(of value: Member) -> String {
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[value.range]), as: UTF8.self)
        return text.count > 60 ? text.prefix(60) + "…" : text
    }
}

/// The names of the tensors read so far, each once, as their bytes (escapes decoded): a repeated name is found by a
/// hash of its bytes, without a `String` and its hash per tensor, and a plain name (no escape) is kept as where it lies
/// in the body, without a copy (docs/models.md, "Wide rows").
struct TensorNames {
    /// The body the names are in.
    let body: UnsafeRawBufferPointer
    /// The names with an escape, decoded.
    private var decoded: [[UInt8]] = []
    /// Open addressing over a power of two of slots, a quarter full at most: a plain name as where its content lies in
    /// the body, a decoded one as `start` -1 - its position in `decoded`; `count` -1 for an empty slot.
    private var slots: [(start: Int, count: Int)]
    private var used = 0

    /// For about `expected` names.
    init(body: UnsafeRawBufferPointer, expected: Int) {
        self.body = body
        var count = 16
        while count < expected * 4 { count *= 2 }
        slots = Array(repeating: (0, -1), count: count)
    }

    /// Adds the name of the string token at `token`; `false` when the set holds it already.
    mutating func insert(_ token: Range<Int>) -> Bool {
        let content = UnsafeRawBufferPointer(rebasing: body[(token.lowerBound + 1)..<(token.upperBound - 1)])
        guard !Self.hasEscape(content) else {
            let name = Array(JSONParser.string(token, in: body).utf8)
            guard let slot = name.withUnsafeBytes({ freeSlot(for: $0) }) else { return false }
            decoded.append(name)
            return add((-decoded.count, name.count), at: slot)
        }
        guard let slot = freeSlot(for: content) else { return false }
        return add((token.lowerBound + 1, content.count), at: slot)
    }

    /// Whether a name's content has a backslash: a loop for a short name, `memchr` for a long one.
    static func hasEscape(_ content: UnsafeRawBufferPointer) -> Bool {
        guard content.count > 16 else { return content.contains(UInt8(ascii: "\\")) }
        return memchr(content.baseAddress!, 0x5C, content.count) != nil
    }

    /// The empty slot where `name` goes; `nil` when a slot holds it already.
    private func freeSlot(for name: UnsafeRawBufferPointer) -> Int? {
        let mask = slots.count - 1
        var slot = Self.hash(name) & mask
        while slots[slot].count >= 0 {
            if slots[slot].count == name.count, withBytes(of: slots[slot], { Self.equal($0, name) }) { return nil }
            slot = (slot + 1) & mask
        }
        return slot
    }

    private mutating func add(_ name: (start: Int, count: Int), at slot: Int) -> Bool {
        slots[slot] = name
        used += 1
        if used * 4 > slots.count { grow() }
        return true
    }

    /// The bytes of a slot's name, to `body`.
    private func withBytes<T>(of name: (start: Int, count: Int), _ body: (UnsafeRawBufferPointer) -> T) -> T {
        guard name.start < 0 else { return body(UnsafeRawBufferPointer(rebasing: self.body[name.start..<(name.start + name.count)])) }
        return decoded[-1 - name.start].withUnsafeBytes(body)
    }

    static func equal(_ one: UnsafeRawBufferPointer, _ other: UnsafeRawBufferPointer) -> Bool {
        guard one.count == other.count else { return false }
        guard one.count > 16 else {
            for offset in 0..<one.count where one[offset] != other[offset] { return false }
            return true
        }
        return memcmp(one.baseAddress!, other.baseAddress!, one.count) == 0
    }

    /// Twice the slots, every name placed again.
    private mutating func grow() {
        let names = slots.filter { $0.count >= 0 }
        slots = Array(repeating: (0, -1), count: slots.count * 2)
        let mask = slots.count - 1
        for name in names {
            var slot = withBytes(of: name) { Self.hash($0) } & mask
            while slots[slot].count >= 0 { slot = (slot + 1) & mask }
            slots[slot] = name
        }
    }

    /// FNV-1a over a name's bytes, its halves folded.
    private static func hash(_ name: UnsafeRawBufferPointer) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: hash ^ hash >> 32)
    }
}

/// The rows' bytes as they are built, each row's object in a buffer of its own grown by doubling: appending to an array
/// checks that its storage is unique and has room at each call, a third of what a tensor of one value cost
/// (docs/models.md, "Wide rows"). Its owner deallocates it.
struct RowBuffers {
    private struct Row {
        var base: UnsafeMutableRawPointer
        var count: Int
        var capacity: Int
    }

    private var rows = UnsafeMutableBufferPointer<Row>(start: nil, count: 0)

    /// `count` rows, each opened (`{`) with room for `reserve` bytes.
    mutating func allocate(count: Int, reserve: Int) {
        deallocate()
        let capacity = max(reserve, 16)
        rows = .allocate(capacity: count)
        for row in 0..<count {
            let base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
            base.storeBytes(of: UInt8(ascii: "{"), as: UInt8.self)
            (rows.baseAddress! + row).initialize(to: Row(base: base, count: 1, capacity: capacity))
        }
    }

    mutating func deallocate() {
        for row in rows { row.base.deallocate() }
        rows.deallocate()
        rows = UnsafeMutableBufferPointer(start: nil, count: 0)
    }

    var count: Int { rows.count }

    /// Adds `key`, a name's token (quotes included), and its colon, after a comma unless it is the row's first.
    func appendKey(_ key: UnsafeRawBufferPointer, first: Bool, to row: Int) {
        let comma = first ? 0 : 1
        let start = room(comma + key.count + 1, in: row)
        if comma == 1 { start.storeBytes(of: UInt8(ascii: ","), as: UInt8.self) }
        (start + comma).copyMemory(from: key.baseAddress!, byteCount: key.count)
        (start + comma + key.count).storeBytes(of: UInt8(ascii: ":"), as: UInt8.self)
    }

    func append(_ bytes: UnsafeRawBufferPointer, to row: Int) {
        guard let source = bytes.baseAddress else { return }
        room(bytes.count, in: row).copyMemory(from: source, byteCount: bytes.count)
    }

    /// Each row, its object closed.
    func closedRows() -> [[UInt8]] {
        (0..<rows.count).map { row in
            room(1, in: row).storeBytes(of: UInt8(ascii: "}"), as: UInt8.self)
            return Array(UnsafeRawBufferPointer(start: rows[row].base, count: rows[row].count))
        }
    }

    /// Where `extra` more bytes of `row` go, counted as written.
    private func room(_ extra: Int, in row: Int) -> UnsafeMutableRawPointer {
        var current = rows[row]
        if current.count + extra > current.capacity {
            let capacity = max(current.capacity * 2, current.count + extra)
            let base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
            base.copyMemory(from: current.base, byteCount: current.count)
            current.base.deallocate()
            current.base = base
            current.capacity = capacity
        }
        let start = current.base + current.count
        current.count += extra
        rows[row] = current
        return start
    }
}
