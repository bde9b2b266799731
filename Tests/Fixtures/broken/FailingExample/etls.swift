import AutoServeModel

struct FailingExample {
    init(path: String) {}
    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] { ["answer": 41] }
}
