import Foundation
import Hummingbird

/// The Iris classifier of `models_serve/Iris`, written the way a team would without AutoServe: the same
/// weights and arithmetic, the body decoded by Hummingbird's default `JSONDecoder` into typed structs and the
/// answer encoded by its default `JSONEncoder`.
struct Weights: Decodable {
    var classes: [String]
    var coefficients: [[Double]]
    var intercepts: [Double]
}

struct ScoreRequest: Decodable {
    struct Variables: Decodable {
        var sepal_length: Double
        var sepal_width: Double
        var petal_length: Double
        var petal_width: Double
    }
    var variables: Variables
}

struct Score: ResponseEncodable {
    var iris_class: String
    var iris_probability: Double
}

struct Classifier: Sendable {
    let classes: [String]
    let coefficients: [[Double]]
    let intercepts: [Double]

    func score(_ variables: ScoreRequest.Variables) throws -> Score {
        let row = [variables.sepal_length, variables.sepal_width, variables.petal_length, variables.petal_width]
        guard row.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw HTTPError(.unprocessableContent, message: "measurements must be non-negative centimetres")
        }
        let scores = zip(coefficients, intercepts).map { coefficients, intercept in
            zip(coefficients, row).reduce(intercept) { $0 + $1.0 * $1.1 }
        }
        let largest = scores.max() ?? 0
        let exponentials = scores.map { exp($0 - largest) }
        let total = exponentials.reduce(0, +)
        var best = 0
        for index in exponentials.indices where exponentials[index] > exponentials[best] { best = index }
        return Score(iris_class: classes[best], iris_probability: (exponentials[best] / total * 10_000).rounded() / 10_000)
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: Baseline <path to models_serve/Iris/weights.json>  (PORT from the environment)\n".utf8))
    exit(64)
}
let weights = try JSONDecoder().decode(Weights.self, from: Data(contentsOf: URL(fileURLWithPath: arguments[1])))
let classifier = Classifier(classes: weights.classes, coefficients: weights.coefficients, intercepts: weights.intercepts)

let router = Router()
router.get("hello") { _, _ in "hello" }
router.post("Iris") { request, context -> Score in
    let body = try await request.decode(as: ScoreRequest.self, context: context)
    return try classifier.score(body.variables)
}
let port = Int(ProcessInfo.processInfo.environment["PORT"] ?? "") ?? 8090
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
