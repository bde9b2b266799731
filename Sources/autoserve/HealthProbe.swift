import ServingCore

/// One `GET /healthz` to 127.0.0.1: the status code of the answer, or `nil`.
enum HealthProbe {
    static func status(port: Int, timeoutSeconds: Int) -> Int? {
        PlainHTTP.status(
            host: "127.0.0.1", port: port, request: "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", timeoutSeconds: timeoutSeconds
        )
    }
}
