// libFuzzer target: the model SDK's shortcut decoder (`VariablesDecoder`, compiled in with the SDK's sources
// by fuzz/run.sh, so its internals are visible).
//
// The oracle is Foundation's `JSONDecoder` on the same bytes: whenever the shortcut gives a value, JSONDecoder
// must give an equal one (it may give up at any time, and then JSONDecoder decides alone), for the dynamic
// `[String: JSON]` and for a typed struct with every kind of field.
import Foundation

struct Row: Decodable, Equatable {
    struct Nested: Decodable, Equatable {
        var x: Double
        var tags: [String]?
    }
    var a: Double?
    var b: String?
    var c: [Int]?
    var d: Bool?
    var e: Nested?
    var f: Float?
    var g: Int8?
    var h: [String: JSON]?
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVariablesDecoder(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let buffer = UnsafeBufferPointer(start: start, count: count)
    check([String: JSON].self, buffer)
    check(Row.self, buffer)
    check(JSON.self, buffer)
    return 0
}

func check<Value: Decodable & Equatable>(_ type: Value.Type, _ buffer: UnsafeBufferPointer<UInt8>) {
    guard let shortcut = VariablesDecoder.decode(type, from: buffer) else { return }
    let data = buffer.isEmpty ? Data("{}".utf8) : Data(buffer: buffer)
    let text = String(decoding: buffer.prefix(300), as: UTF8.self).debugDescription + " (\(buffer.count) bytes)"
    guard let foundation = try? JSONDecoder().decode(type, from: data) else {
        report("FUZZ FAILURE: the shortcut decodes \(type) where JSONDecoder fails: \(text)")
        abort()
    }
    guard sameValue(shortcut, foundation) else {
        report("FUZZ FAILURE: \(type): the shortcut gives \(shortcut), JSONDecoder \(foundation): \(text)")
        abort()
    }
}

/// Equality that counts NaN equal to itself (neither decoder makes one from JSON, but a difference must show).
func sameValue<Value: Equatable>(_ left: Value, _ right: Value) -> Bool {
    left == right || String(describing: left) == String(describing: right)
}

/// Written to standard error at once: the process aborts right after, and buffered output would be lost.
func report(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
