import AutoServeModel

struct BadManifest {
    init(path: String) {}
    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] { [:] }
}
