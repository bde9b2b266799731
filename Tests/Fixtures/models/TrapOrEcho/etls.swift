import AutoServeModel

/// Answers with the row's `marker` (and the size of its `padding`), or traps when `trap` is true: a worker
/// that dies under concurrent large rows.
struct TrapOrEcho {
    init(path: String) {}

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        if variables["trap"]?.bool == true {
            let missing: Int? = nil
            return ["never": .number(Double(missing!))]
        }
        return ["marker": variables["marker"] ?? .null, "padding": .number(Double(variables["padding"]?.string?.utf8.count ?? 0))]
    }
}
