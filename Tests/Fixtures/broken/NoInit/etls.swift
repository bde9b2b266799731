import AutoServeModel

struct NoInit {
    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] { [:] }
}
