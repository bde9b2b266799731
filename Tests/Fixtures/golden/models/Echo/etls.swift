import AutoServeModel

/// Echoes its variables; `mode` makes it fail the way a test needs.
final class Echo {
    let greeting: String

    init(path: String) throws {
        greeting = "hello"
    }

    struct Boom: Error {}

    func transform_predict(_ variables: [String: JSON]) throws -> [String: JSON] {
        switch variables["mode"]?.string {
        case "reject": throw ModelError.invalidInput("mode=reject asks the model to reject the row")
        case "explode": throw Boom()
        case "nan": return ["value": .number(.nan)]
        default: return ["echo": .object(variables), "greeting": .string(greeting)]
        }
    }
}
