import AutoServeModel

struct First {
    init(path: String) {}
    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] { [:] }
}

struct Second {
    init(path: String) {}
    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] { [:] }
}
