import AutoServeModel

/// A model type nested in a namespace, whose entry function lives in an extension and has a label.
enum Namespace {
    struct Scorer {
        struct Variables: Decodable {
            var x: Double
        }

        init(path: String) {}
    }
}

extension Namespace.Scorer {
    func score(variables: Variables) -> [String: JSON] {
        ["y": .number(variables.x * 2)]
    }
}
