import AutoServeModel

/// Answers with a string of `megabytes` MB (default 70): more than a worker frame carries.
struct Huge {
    init(path: String) {}

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        let megabytes = variables["megabytes"]?.int ?? 70
        return ["blob": .string(String(repeating: "x", count: megabytes << 20))]
    }
}
