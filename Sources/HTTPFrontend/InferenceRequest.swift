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

    static let topKeys = ["inputs", "outputs", "id"]
    static let tensorKeys: [[UInt8]] = ["name", "datatype", "shape", "data"].map { Array($0.utf8) }

    static func parse(_ bytes: UnsafeRawBufferPointer, maxRows: Int) -> Result<InferenceRequest, Failure> {
        let members: [Member?]
        let tensors: [Member]
        do {
            (members, tensors) = try JSONParser.locateObjectMembers(topKeys, in: bytes, elementsOf: 0)
        } catch {
            if case .notAnObject = error.reason { return .failure(Failure(status: 400, message: "the body must be a JSON object with inputs")) }
            return .failure(Failure(status: 400, message: "the body is not JSON: \(error)"))
        }
        var request = InferenceRequest(rows: [])
        if let outputs = members[1], outputs.kind == .array {
            request.requested = JSONParser.value(at: outputs.range, in: bytes).array?.compactMap { $0["name"]?.string }
        }
        if let id = members[2], id.kind == .string { request.id = JSONParser.string(id.range, in: bytes) }
        guard members[0]?.kind == .array, !tensors.isEmpty else {
            return .failure(
                Failure(status: 400, message: "the request has no inputs; send one tensor per variable: {\"name\", \"shape\": [N], \"datatype\", \"data\"}"))
        }
        var reader = TensorReader(bytes: bytes, maxRows: maxRows, rowBytes: bytes.count)
        for (position, tensor) in tensors.enumerated() {
            if let failure = reader.read(tensor, position: position) { return .failure(failure) }
        }
        request.rows = reader.finish()
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
    var rows: [[UInt8]]?
    var names = TensorNames()
    /// The values of the tensor being read (kept from one tensor to the next: no allocation per tensor).
    var values: [Member] = []

    init(bytes: UnsafeRawBufferPointer, maxRows: Int, rowBytes: Int) {
        self.bytes = bytes
        self.maxRows = maxRows
        self.rowBytes = rowBytes
    }

    /// The datatypes the protocol names, as their bytes, each with its kind.
    static let datatypes: [(name: [UInt8], kind: InferenceProtocolV2.TensorKind)] = [
        "FP64", "FP32", "INT64", "INT32", "BOOL", "BYTES", "FP16", "INT8", "INT16", "UINT8", "UINT16", "UINT32", "UINT64",
    ].map { (Array($0.utf8), InferenceProtocolV2.TensorKind($0)!) }

    /// Adds the tensor's values to the rows; the failure when the tensor is not one the protocol allows.
    mutating func read(_ tensor: Member, position: Int) -> Failure? {
        var fields = Fields()
        if tensor.kind == .object {
            JSONParser.forEachMember(ofObjectAt: tensor.range, in: bytes) { key, value in fields.keep(value, key: key, in: bytes) }
        }
        guard let nameField = fields.name, nameField.kind == .string else { return Failure(status: 400, message: "input \(position) has no name") }
        // The name as a `String` only for a message.
        var name: String { JSONParser.string(nameField.range, in: bytes) }
        guard names.insert(nameField.range, in: bytes) else {
            return Failure(status: 400, message: "input '\(name)' appears twice; send one tensor per variable")
        }
        guard let datatypeField = fields.datatype, datatypeField.kind == .string,
            let found = Self.datatypes.firstIndex(where: { JSONParser.string(datatypeField.range, in: bytes, equals: $0.name) })
        else {
            return Failure(status: 400, message: "input '\(name)': datatype must be BOOL, BYTES, FP16/32/64, INT8/16/32/64 or UINT8/16/32/64")
        }
        let kind = Self.datatypes[found].kind
        var datatype: String { String(decoding: Self.datatypes[found].name, as: UTF8.self) }
        guard let rowCount = shapeRows(fields.shape) else {
            return Failure(status: 400, message: "input '\(name)': shape must be [N] or [N, 1], one value per row")
        }
        guard let data = fields.data, data.kind == .array else { return Failure(status: 400, message: "input '\(name)': data must be a list of values") }
        values.removeAll(keepingCapacity: true)
        JSONParser.forEachElement(ofArrayAt: data.range, in: bytes) { values.append($0) }
        unwrapOneValueLists()
        guard values.count == rowCount else {
            return Failure(status: 400, message: "input '\(name)': shape says \(rowCount) rows and data holds \(values.count) values")
        }
        guard values.count <= maxRows else {
            return Failure(
                status: 413, message: "the request has \(values.count) rows, and one request scores \(maxRows) at most; split it, or raise MAX_BATCH_ROWS")
        }
        if rows == nil {
            let reserve = rowBytes / max(1, values.count) + 16
            rows = (0..<values.count).map { _ in
                var row: [UInt8] = []
                row.reserveCapacity(reserve)
                return row
            }
        }
        guard rows!.count == values.count else {
            return Failure(status: 400, message: "input '\(name)' has \(values.count) rows and the inputs before it \(rows!.count); send N values in each")
        }
        for (row, value) in values.enumerated() {
            rows![row].append(rows![row].isEmpty ? UInt8(ascii: "{") : UInt8(ascii: ","))
            rows![row].append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[nameField.range]))
            rows![row].append(UInt8(ascii: ":"))
            guard Self.append(value, of: kind, in: bytes, to: &rows![row]) else {
                return Failure(
                    status: 400, message: "input '\(name)', row \(row + 1): \(text(of: value)) is not \(datatype)\(kind.range.map { " (\($0))" } ?? "")")
            }
        }
        return nil
    }

    /// A tensor's members the protocol defines; the first of a repeated key counts, as everywhere in a body.
    struct Fields {
        var name, datatype, shape, data: Member?

        mutating func keep(_ value: Member, key: Range<Int>, in bytes: UnsafeRawBufferPointer) {
            switch Self.field(key, in: bytes) {
            case 0: if name == nil { name = value }
            case 1: if datatype == nil { datatype = value }
            case 2: if shape == nil { shape = value }
            case 3: if data == nil { data = value }
            default: break
            }
        }

        /// Which of `InferenceRequest.tensorKeys` the key token at `key` names, `nil` for none: by its bytes when it
        /// has no escape (most keys, each compared with the one key of its length), else by its text.
        static func field(_ key: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Int? {
            let content = UnsafeRawBufferPointer(rebasing: bytes[(key.lowerBound + 1)..<(key.upperBound - 1)])
            guard !content.contains(UInt8(ascii: "\\")) else {
                return InferenceRequest.tensorKeys.firstIndex { JSONParser.string(key, in: bytes, equals: $0) }
            }
            let candidate: Int
            switch (content.count, content.first) {
            case (4, UInt8(ascii: "n")): candidate = 0
            case (8, _): candidate = 1
            case (5, _): candidate = 2
            case (4, UInt8(ascii: "d")): candidate = 3
            default: return nil
            }
            let name = InferenceRequest.tensorKeys[candidate]
            for offset in 0..<name.count where content[offset] != name[offset] { return nil }
            return candidate
        }
    }

    /// The rows' objects, closed.
    mutating func finish() -> [[UInt8]] {
        guard var rows else { return [] }
        for row in rows.indices { rows[row].append(UInt8(ascii: "}")) }
        self.rows = nil
        return rows
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

    /// A shape `[N, 1]` may come as one list per row: when every value is a list of one, each is its one value.
    mutating func unwrapOneValueLists() {
        guard values.first?.kind == .array else { return }
        var inner: [Member] = []
        inner.reserveCapacity(values.count)
        for value in values {
            guard value.kind == .array else { return }
            var count = 0
            JSONParser.forEachElement(ofArrayAt: value.range, in: bytes) { element in
                count += 1
                if count == 1 { inner.append(element) }
            }
            guard count == 1 else { return }
        }
        values = inner
    }

    /// Appends the value when it fits the datatype: numbers within the float's range, whole numbers within the
    /// integer's, booleans (or 0 and 1), strings, `null` for a missing value; `false` when it does not fit.
    /// (Static: a method of the reader would be called on a copy of it while `row`, one of its rows, is changed.)
    static func append(_ value: Member, of kind: InferenceProtocolV2.TensorKind, in bytes: UnsafeRawBufferPointer, to row: inout [UInt8]) -> Bool {
        let token = UnsafeRawBufferPointer(rebasing: bytes[value.range])
        switch (kind, value.kind) {
        case (_, .null), (.bool, .bool), (.bytes, .string):
            row.append(contentsOf: token)
            return true
        case (.number(let largest), .number):
            guard Self.isBelow(token, largest) || JSONParser.number(value.range, in: bytes).magnitude <= largest else { return false }
            row.append(contentsOf: token)
            return true
        case (.integer(let lowest, let past), .number):
            let number = Self.wholeNumber(token) ?? JSONParser.number(value.range, in: bytes)
            guard number.rounded(.towardZero) == number, number >= lowest, number < past else { return false }
            row.append(contentsOf: token)
            return true
        case (.bool, .number):
            let number = JSONParser.number(value.range, in: bytes)
            guard number == 0 || number == 1 else { return false }
            row.append(contentsOf: (number == 1 ? "true" : "false").utf8)
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
/// hash of its bytes, without a `String` and its hash per tensor (docs/models.md, "Wide rows").
struct TensorNames {
    /// Every name's bytes, one after the other.
    private var storage: [UInt8] = []
    /// Where each name lies in `storage`.
    private var names: [Range<Int>] = []
    /// Open addressing over a power of two of slots: a name's position in `names` plus one, 0 for an empty slot.
    private var slots: [Int] = Array(repeating: 0, count: 64)

    /// Adds the name of the string token at `token`; `false` when the set holds it already.
    mutating func insert(_ token: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Bool {
        let content = UnsafeRawBufferPointer(rebasing: bytes[(token.lowerBound + 1)..<(token.upperBound - 1)])
        guard !content.contains(UInt8(ascii: "\\")) else {
            return Array(JSONParser.string(token, in: bytes).utf8).withUnsafeBytes { insert(name: $0) }
        }
        return insert(name: content)
    }

    private mutating func insert(name: UnsafeRawBufferPointer) -> Bool {
        let mask = slots.count - 1
        var slot = Self.hash(name) & mask
        while slots[slot] != 0 {
            let other = names[slots[slot] - 1]
            let same = storage.withUnsafeBytes { stored in
                guard other.count == name.count else { return false }
                for offset in 0..<name.count where stored[other.lowerBound + offset] != name[offset] { return false }
                return true
            }
            if same { return false }
            slot = (slot + 1) & mask
        }
        let start = storage.count
        storage.append(contentsOf: name)
        names.append(start..<storage.count)
        slots[slot] = names.count
        if names.count * 2 > slots.count { grow() }
        return true
    }

    /// Twice the slots, every name placed again.
    private mutating func grow() {
        slots = Array(repeating: 0, count: slots.count * 2)
        let mask = slots.count - 1
        storage.withUnsafeBytes { stored in
            for (position, name) in names.enumerated() {
                var slot = Self.hash(UnsafeRawBufferPointer(rebasing: stored[name])) & mask
                while slots[slot] != 0 { slot = (slot + 1) & mask }
                slots[slot] = position + 1
            }
        }
    }

    /// FNV-1a over a name's bytes, its halves folded.
    private static func hash(_ name: UnsafeRawBufferPointer) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: hash ^ hash >> 32)
    }
}
