import HTTPFrontend

/// One `GET /healthz` to 127.0.0.1: the status code of the answer, or `nil`.
enum HealthProbe {
    static func status(port: Int, timeoutSeconds: Int) async -> Int? {
        await HTTPStatusClient.status(host: "127.0.0.1", port: port, path: "/healthz", timeout: .seconds(Int64(timeoutSeconds)))
    }
}
