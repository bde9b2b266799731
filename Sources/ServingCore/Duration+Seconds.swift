extension Duration {
    /// The duration in seconds, for metrics, logs and date arithmetic.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
