import AutoServeModel

struct CompileError {
    init(path: String) {}

    func transform_predict(_ variables: [String: JSON]) -> [String: JSON] {
        let total: Int = "not a number"
        return ["total": .number(Double(total))]
    }
}
