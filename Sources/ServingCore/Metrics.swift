public import CoreMetrics
import Prometheus
import Synchronization

/// The server's metrics: swift-metrics handles backed by one swift-prometheus registry per server, which
/// `/metrics` renders in the Prometheus text format.
///
/// Every metric is listed once in `catalog`, with its type, help text and label names (docs/http-api.md, "HTTP API"). A
/// stage that records on the request path resolves its handles once (a model version's, at its load) and then
/// records without a lock or a label lookup; the others record by name and label values.
public final class Metrics: Sendable {
    /// Latency buckets in seconds, from 100 µs to 10 s.
    public static let latencyBuckets: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// Build-duration buckets in seconds.
    public static let buildBuckets: [Double] = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300]

    /// One metric's family: its kind, what it counts, and the names of its labels.
    struct Family {
        enum Kind {
            case counter, gauge
            case histogram([Double])
        }
        var kind: Kind
        var help: String
        var labels: [String]
    }

    static let catalog: [String: Family] = [
        "autoserve_requests_total": Family(kind: .counter, help: "Scoring requests by model, status and version.", labels: ["model", "status", "version"]),
        "autoserve_request_duration_seconds": Family(kind: .histogram(latencyBuckets), help: "Scoring latency by model.", labels: ["model"]),
        "autoserve_syncs_total": Family(kind: .counter, help: "Syncs of the model source by result.", labels: ["result"]),
        "autoserve_last_sync_success_timestamp_seconds": Family(kind: .gauge, help: "Unix time of the last successful sync.", labels: []),
        "autoserve_model_builds_total": Family(kind: .counter, help: "Plugin builds by model and result.", labels: ["model", "result"]),
        "autoserve_build_duration_seconds": Family(kind: .histogram(buildBuckets), help: "Plugin build durations.", labels: ["model"]),
        "autoserve_plugin_loads_total": Family(kind: .counter, help: "Plugin loads (init and examples) by model and result.", labels: ["model", "result"]),
        "autoserve_model_state": Family(kind: .gauge, help: "1 for the state each model is in.", labels: ["model", "state"]),
        "autoserve_worker_restarts_total": Family(kind: .counter, help: "Worker process restarts by model and cause.", labels: ["model", "cause"]),
        "autoserve_inprocess_hung_calls_total": Family(
            kind: .counter, help: "In-process calls that passed their timeout; each holds a thread for good.", labels: ["model"]
        ),
        "autoserve_model_output_dropped_lines_total": Family(
            kind: .counter, help: "Lines a model printed that were not logged (over the rate limit).", labels: ["model"]
        ),
        "autoserve_peer_syncs_total": Family(kind: .counter, help: "Syncs forwarded to the replicas of PEERS, by result.", labels: ["result"]),
        "autoserve_inference_log_lines_total": Family(kind: .counter, help: "Lines written to INFERENCE_LOG.", labels: []),
        "autoserve_inference_log_dropped_total": Family(
            kind: .counter, help: "Rows not written to INFERENCE_LOG: its queue was full (the writer behind) or the file could not be written.",
            labels: []
        ),
        "autoserve_feature_psi": Family(
            kind: .gauge, help: "PSI of a feature's recent rows against the model's reference sample (model.yaml drift).", labels: ["model", "feature"]
        ),
        "autoserve_feature_missing_ratio": Family(
            kind: .gauge, help: "Share of a model's recent rows without the feature (or with a value of another kind).", labels: ["model", "feature"]
        ),
        "autoserve_connections_refused_total": Family(kind: .counter, help: "Connections refused over MAX_CONNECTIONS.", labels: []),
        "autoserve_log_lines_dropped_total": Family(
            kind: .counter, help: "Log lines dropped because standard error was not read fast enough (4 MiB waiting).", labels: []
        ),
        "autoserve_connections_open": Family(kind: .gauge, help: "Client connections open now.", labels: []),
        "autoserve_connections_timed_out_total": Family(
            kind: .counter, help: "Connections closed for a timeout, by phase (header, body, keepalive).", labels: ["phase"]
        ),
    ]

    let registry = PrometheusCollectorRegistry()
    /// What swift-metrics asks to destroy handles; handles here live as long as the server.
    let factory: PrometheusMetricsFactory
    /// The series of the gauges set as a whole (`replaceGauge`), so that a series that is gone can be removed.
    private let replacedGauges = Mutex<[String: [[String]: Prometheus.Gauge]]>([:])
    /// Each model's request latencies since start, for the index page (`LatencyCounts`).
    let latencies = Mutex<[String: LatencyCounts]>([:])

    public init() {
        factory = PrometheusMetricsFactory(registry: registry)
    }

    /// The family of `name`; a name missing from the catalog is a programming error, caught by every test.
    static func family(_ name: String) -> Family {
        guard let family = catalog[name] else { fatalError("\(name) is not in Metrics.catalog") }
        return family
    }

    static func descriptor(_ name: String, _ family: Family) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: family.help)
    }

    static func dimensions(_ family: Family, _ labels: [String]) -> [(String, String)] {
        precondition(family.labels.count == labels.count, "\(family.labels) labels, given \(labels)")
        return Array(zip(family.labels, labels))
    }

    /// A counter's handle, to keep and increment without a lookup.
    public func counter(_ name: String, labels: [String] = []) -> CoreMetrics.Counter {
        let family = Self.family(name)
        let dimensions = Self.dimensions(family, labels)
        let handler = registry.makeCounter(descriptor: Self.descriptor(name, family), labels: dimensions)
        return Counter(label: name, dimensions: dimensions, handler: handler, factory: factory)
    }

    /// A histogram's handle (a swift-metrics recorder that aggregates), with the buckets of its family.
    public func histogram(_ name: String, labels: [String] = []) -> Recorder {
        let family = Self.family(name)
        guard case .histogram(let buckets) = family.kind else { fatalError("\(name) is not a histogram") }
        let dimensions = Self.dimensions(family, labels)
        let handler = registry.makeValueHistogram(descriptor: Self.descriptor(name, family), labels: dimensions, buckets: buckets)
        return Recorder(label: name, dimensions: dimensions, aggregate: true, handler: handler, factory: factory)
    }

    /// A gauge's handle (a swift-metrics recorder that keeps the last value).
    public func gauge(_ name: String, labels: [String] = []) -> Recorder {
        let family = Self.family(name)
        let dimensions = Self.dimensions(family, labels)
        let handler = registry.makeGauge(descriptor: Self.descriptor(name, family), labels: dimensions)
        return Recorder(label: name, dimensions: dimensions, aggregate: false, handler: handler, factory: factory)
    }

    public func increment(_ name: String, labels: [String] = []) {
        counter(name, labels: labels).increment()
    }

    public func set(_ name: String, labels: [String] = [], to value: Double) {
        gauge(name, labels: labels).record(value)
    }

    public func observe(_ name: String, labels: [String] = [], value: Double) {
        histogram(name, labels: labels).record(value)
    }

    /// Replaces every series of a gauge family, so series that no longer exist disappear.
    public func replaceGauge(_ name: String, with series: [[String]: Double]) {
        let family = Self.family(name)
        replacedGauges.withLock { gauges in
            var current = gauges[name] ?? [:]
            for (labels, gauge) in current where series[labels] == nil {
                registry.unregisterGauge(gauge)
                current[labels] = nil
            }
            for (labels, value) in series {
                let gauge = current[labels] ?? registry.makeGauge(descriptor: Self.descriptor(name, family), labels: Self.dimensions(family, labels))
                gauge.set(to: value)
                current[labels] = gauge
            }
            gauges[name] = current
        }
    }

    /// The Prometheus text exposition of every series.
    public func render() -> String {
        registry.emitToString()
    }
}

/// The handles of one model's requests (one version's, or those answered without a version), resolved once: a
/// request then counts itself and its latency without a label lookup, under a lock of its version only.
public final class RequestInstruments: Sendable {
    /// The statuses a scoring request answers, each with a slot for its counter, made on its first use.
    static let statuses = [200, 400, 404, 405, 413, 415, 422, 429, 500, 503, 504]

    let metrics: Metrics
    public let model: String
    public let version: String
    let counters: Mutex<[CoreMetrics.Counter?]>
    let latency: Recorder
    /// The model's counts for the index page, shared by its versions.
    let summary: LatencyCounts

    public init(metrics: Metrics, model: String, version: String?) {
        self.metrics = metrics
        self.model = model
        self.version = version ?? ""
        counters = Mutex(Array(repeating: nil, count: Self.statuses.count))
        latency = metrics.histogram("autoserve_request_duration_seconds", labels: [model])
        summary = metrics.latencyCounts(model)
    }

    /// Counts one request with its status and latency.
    public func record(status: Int, seconds: Double) {
        latency.record(seconds)
        summary.record(seconds)
        guard let index = Self.statuses.firstIndex(of: status) else {
            return metrics.counter("autoserve_requests_total", labels: [model, String(status), version]).increment()
        }
        let counter = counters.withLock { counters in
            if let counter = counters[index] { return counter }
            let counter = metrics.counter("autoserve_requests_total", labels: [model, String(status), version])
            counters[index] = counter
            return counter
        }
        counter.increment()
    }
}
