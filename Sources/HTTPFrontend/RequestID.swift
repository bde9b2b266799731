import Synchronization

/// The id of a request, returned as `X-Request-ID` and written in the inference log and the debug request log, so
/// that a client can find its row (docs/operations.md, "The inference log").
///
/// A client's own id is kept when it is 1 to 128 characters of letters, digits and `-._:@/+=`; otherwise, and when
/// there is none, the server makes one: a random prefix drawn at start and a counter, unique across replicas
/// and cheaper than a UUID per request.
enum RequestID {
    static func accept(_ value: String?) -> String? {
        guard let value, (1...128).contains(value.utf8.count) else { return nil }
        let allowed = value.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
            case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "/"), UInt8(ascii: "+"),
                UInt8(ascii: "="):
                true
            default: false
            }
        }
        return allowed ? value : nil
    }

    /// The client's id if it is acceptable, else a new one.
    static func of(_ header: String?) -> String {
        accept(header) ?? make()
    }

    static func make() -> String {
        let number = counter.add(1, ordering: .relaxed).newValue
        return prefix + String(number, radix: 16)
    }

    private static let prefix: String = {
        let random = UInt64.random(in: 0..<(1 << 48))
        let hex = String(random, radix: 16)
        return String(repeating: "0", count: 12 - hex.count) + hex + "-"
    }()
    private static let counter = Atomic<UInt64>(0)
}
