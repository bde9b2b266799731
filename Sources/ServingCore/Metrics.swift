import Synchronization

/// The server's Prometheus metrics: counters, gauges and histograms, rendered in the text format.
///
/// One registry per server, shared by every stage. Recording takes one short lock and never calls out.
public final class Metrics: Sendable {
    /// Latency buckets in seconds, from 100 µs to 10 s.
    public static let latencyBuckets: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// Build-duration buckets in seconds.
    public static let buildBuckets: [Double] = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300]

    struct Key: Hashable {
        var name: String
        var labels: [String]
    }

    struct Histogram {
        var buckets: [Double]
        var counts: [UInt64]
        var sum: Double = 0
        var count: UInt64 = 0

        mutating func record(_ value: Double) {
            if let bucket = buckets.firstIndex(where: { value <= $0 }) { counts[bucket] += 1 }
            sum += value
            count += 1
        }
    }

    struct Family {
        var help: String
        var type: String
        var labelNames: [String]
    }

    struct State {
        var families: [String: Family] = [:]
        var counters: [Key: Double] = [:]
        var gauges: [Key: Double] = [:]
        var histograms: [Key: Histogram] = [:]
    }

    let state = Mutex(State())

    public init() {}

    /// Declares a metric family with its help text; recording into an undeclared family declares it too.
    public func declare(_ name: String, type: String, help: String, labels: [String]) {
        state.withLock { $0.families[name] = Family(help: help, type: type, labelNames: labels) }
    }

    public func increment(_ name: String, labels: [String] = [], by amount: Double = 1) {
        state.withLock { $0.counters[Key(name: name, labels: labels), default: 0] += amount }
    }

    public func set(_ name: String, labels: [String] = [], to value: Double) {
        state.withLock { $0.gauges[Key(name: name, labels: labels)] = value }
    }

    /// Replaces every series of a gauge family, so series that no longer exist disappear.
    public func replaceGauge(_ name: String, with series: [[String]: Double]) {
        state.withLock { state in
            state.gauges = state.gauges.filter { $0.key.name != name }
            for (labels, value) in series { state.gauges[Key(name: name, labels: labels)] = value }
        }
    }

    public func observe(_ name: String, labels: [String] = [], value: Double, buckets: [Double] = Metrics.latencyBuckets) {
        state.withLock { state in
            // Modified in place: a copy out and back would copy the bucket counts on every request.
            state.histograms[Key(name: name, labels: labels), default: Histogram(buckets: buckets, counts: Array(repeating: 0, count: buckets.count))]
                .record(value)
        }
    }

    /// The value of a counter, for tests and the index.
    public func counter(_ name: String, labels: [String] = []) -> Double {
        state.withLock { $0.counters[Key(name: name, labels: labels)] ?? 0 }
    }

    /// The Prometheus text exposition of every series, sorted so that scrapes diff cleanly.
    public func render() -> String {
        let state = state.withLock { $0 }
        var names = Set(state.counters.keys.map(\.name))
        names.formUnion(state.gauges.keys.map(\.name))
        names.formUnion(state.histograms.keys.map(\.name))
        var text = ""
        for name in names.sorted() {
            let family = state.families[name]
            let labelNames = family?.labelNames ?? []
            if let family {
                text += "# HELP \(name) \(family.help)\n# TYPE \(name) \(family.type)\n"
            }
            for (key, value) in state.counters.filter({ $0.key.name == name }).sorted(by: { $0.key.labels.lexicographicallyPrecedes($1.key.labels) }) {
                text += "\(name)\(Self.labelText(labelNames, key.labels)) \(Self.number(value))\n"
            }
            for (key, value) in state.gauges.filter({ $0.key.name == name }).sorted(by: { $0.key.labels.lexicographicallyPrecedes($1.key.labels) }) {
                text += "\(name)\(Self.labelText(labelNames, key.labels)) \(Self.number(value))\n"
            }
            for (key, histogram) in state.histograms.filter({ $0.key.name == name }).sorted(by: { $0.key.labels.lexicographicallyPrecedes($1.key.labels) }) {
                var cumulative: UInt64 = 0
                for (bound, count) in zip(histogram.buckets, histogram.counts) {
                    cumulative += count
                    text += "\(name)_bucket\(Self.labelText(labelNames + ["le"], key.labels + [Self.number(bound)])) \(cumulative)\n"
                }
                text += "\(name)_bucket\(Self.labelText(labelNames + ["le"], key.labels + ["+Inf"])) \(histogram.count)\n"
                text += "\(name)_sum\(Self.labelText(labelNames, key.labels)) \(Self.number(histogram.sum))\n"
                text += "\(name)_count\(Self.labelText(labelNames, key.labels)) \(histogram.count)\n"
            }
        }
        return text
    }

    static func labelText(_ names: [String], _ values: [String]) -> String {
        guard !values.isEmpty else { return "" }
        let pairs = zip(names, values).map { name, value in
            let escaped = value.replacingOccurrences("\\", with: "\\\\").replacingOccurrences("\"", with: "\\\"")
                .replacingOccurrences("\n", with: "\\n")
            return "\(name)=\"\(escaped)\""
        }
        return "{" + pairs.joined(separator: ",") + "}"
    }

    static func number(_ value: Double) -> String {
        if value.rounded(.towardZero) == value, abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}

extension String {
    func replacingOccurrences(_ target: Character, with replacement: String) -> String {
        guard contains(target) else { return self }
        var result = ""
        for character in self {
            if character == target { result += replacement } else { result.append(character) }
        }
        return result
    }
}
