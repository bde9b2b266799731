import AutoServeModel

/// Scores nothing in particular; its folder carries a reference sample for live drift (model.yaml `drift`).
struct Drifty {
    init(path: String) {}

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        ["seen": .number(Double(variables.count))]
    }
}
