import ServingCore
import Testing

@testable import PluginBuilder

struct ModelInspectorTests {
    func entryPoint(_ source: String, function: String = "transform_predict", type: String? = nil) throws -> ModelEntryPoint {
        try ModelInspector().entryPoint(in: [.init(name: "M/etls.swift", text: source)], function: function, typeName: type, manifestLine: 3)
    }

    func failure(_ source: String, function: String = "transform_predict", type: String? = nil) -> Diagnostic? {
        do {
            _ = try entryPoint(source, function: function, type: type)
            return nil
        } catch {
            return (error as? ModelBuildError)?.diagnostic
        }
    }

    @Test func findsTheTypeWithItsInitializerAndFunction() throws {
        let entry = try entryPoint(
            """
            import AutoServeModel
            // struct Decoy { func transform_predict(_ v: Int) {} }
            let note = "struct Decoy2 { func transform_predict() }"
            struct Model {
                init(path: String) throws {}
                func helper() {}
                func transform_predict(_ variables: [String: JSON]) throws -> [String: JSON] { [:] }
            }
            """
        )
        #expect(entry.typeName == "Model")
        #expect(entry.line == 4)
        #expect(entry.initThrows)
        #expect(entry.functionThrows)
        #expect(entry.argumentLabel == nil)
    }

    /// The schema fuzzer's find: 449 bytes with `var l[[[[…` (110 levels) kept swift-syntax's parser busy for ever; 18
    /// levels took a second. Such a file is refused before it is parsed, with its line; the depth real code has passes.
    @Test func bracketsNestedTooDeepAreRefusedBeforeTheParser() throws {
        let hostile = "import AutoServeModel\nstruct M {\n    var l" + String(repeating: "[", count: 110) + "evel: Int }\n}\n"
        let diagnostic = try #require(failure(hostile))
        #expect(diagnostic.line == 3)
        #expect(diagnostic.message.contains("square brackets nested more than 12 deep"), "\(diagnostic.message)")
        let closed = "struct M { let x: " + String(repeating: "[", count: 13) + "Int" + String(repeating: "]", count: 13) + " }"
        #expect(failure(closed)?.message.contains("nested more than 12") == true)

        // The fuzzer's second find: a `"` that the parser ends at its line hid 110 `[` from a scanner that skipped
        // strings; every `[` counts now.
        let hidden = "struct M {\n    var s\"{ var t: Int }\n    var l" + String(repeating: "[", count: 110) + "x: Int }\n}\n"
        #expect(failure(hidden)?.line == 3)
        let fine = """
            import AutoServeModel
            // [[[Double]]] and "[[x]]" in comments and strings count, as the depth code has: well under the bound.
            let note = "[[[x]]]"
            struct Model {
                init(path: String) {}
                func transform_predict(_ variables: [String: [[[[Double]]]]]) -> [String: JSON] { [["a": [[1.0]]]][0] as? [String: JSON] ?? [:] }
            }
            """
        #expect(ModelInspector.bracketsTooDeep(fine) == nil)
        #expect(try entryPoint(fine).typeName == "Model")
    }

    @Test func readsExtensionsNestedTypesLabelsAndNonThrowingMembers() throws {
        let entry = try entryPoint(
            """
            enum Space {
                final class Model {
                    init(path: String, verbose: Bool = false) {}
                }
            }
            extension Space.Model {
                func transform_predict(variables: [String: JSON]) -> [String: JSON] {
                    func transform_predict(_ x: Int) {}
                    return [:]
                }
            }
            """
        )
        #expect(entry.typeName == "Space.Model")
        #expect(!entry.initThrows)
        #expect(!entry.functionThrows)
        #expect(entry.argumentLabel == "variables")
    }

    @Test func theManifestPicksAmongSeveralCandidates() throws {
        let source = """
            struct A { init(path: String) {}; func transform_predict(_ v: [String: JSON]) -> [String: JSON] { [:] } }
            struct B { init(path: String) {}; func transform_predict(_ v: [String: JSON]) -> [String: JSON] { [:] } }
            """
        #expect(failure(source)?.message.contains("several types declare transform_predict: A (M/etls.swift:1), B (M/etls.swift:2)") == true)
        #expect(try entryPoint(source, type: "B").typeName == "B")
        let missing = failure(source, type: "C")
        #expect(missing?.file == "model.yaml" && missing?.line == 3 && missing?.message.contains("'C'") == true)
    }

    @Test(arguments: [
        ("struct M { init(path: String) {} }", "no type declares transform_predict"),
        ("struct M { func transform_predict(_ v: Int) -> [String: JSON] { [:] } }", "has no init(path: String)"),
        ("struct M { init?(path: String) {}; func transform_predict(_ v: Int) -> [String: JSON] { [:] } }", "is failable"),
        ("struct M { init(path: String) {}; mutating func transform_predict(_ v: Int) -> [String: JSON] { [:] } }", "is mutating"),
        ("struct M { init(path: String) {}; static func transform_predict(_ v: Int) -> [String: JSON] { [:] } }", "is static"),
        ("struct M { init(path: String) {}; func transform_predict(_ v: Int) async -> [String: JSON] { [:] } }", "is async"),
        ("struct M { init(path: String) {}; func transform_predict(_ a: Int, _ b: Int) -> [String: JSON] { [:] } }", "exactly one parameter"),
        ("actor M { init(path: String) {}; func transform_predict(_ v: Int) -> [String: JSON] { [:] } }", "is an actor"),
        ("struct M<T> { init(path: String) {}; func transform_predict(_ v: Int) -> [String: JSON] { [:] } }", "is generic"),
        ("struct M { init(path: String) {}; func transform_predict(_ v: Int) -> Int { 1 }; func transform_predict(_ v: String) -> Int { 1 } }", "2 times"),
    ])
    func aBadTypeIsADiagnosticWithItsLine(source: String, fragment: String) {
        let diagnostic = failure(source)
        #expect(diagnostic?.message.contains(fragment) == true, "\(String(describing: diagnostic))")
    }
}

extension ModelInspectorTests {
    /// `explain` beside the entry function (docs/explanations.md, "Swift models"): found when it returns `Explanation`,
    /// refused with a reason when it returns one but cannot be called like the entry function.
    @Test func anExplainFunctionIsFound() throws {
        let model = """
            struct M {
                init(path: String) {}
                func transform_predict(_ variables: [String: JSON]) -> [String: JSON] { [:] }
                func explain(_ variables: [String: JSON]) throws -> Explanation { Explanation(base: 0, contributions: [:]) }
            }
            """
        #expect(try entryPoint(model).explain == ExplainFunction(argumentLabel: nil, throwing: true))
        let labelled = model.replacingOccurrences(of: "func explain(_ variables", with: "func explain(row variables").replacingOccurrences(
            of: ") throws -> Explanation", with: ") -> Explanation")
        #expect(try entryPoint(labelled).explain == ExplainFunction(argumentLabel: "row", throwing: false))
        // An explain of the model's own (another return type) is not AutoServe's.
        let ownExplain = model.replacingOccurrences(of: "throws -> Explanation {", with: "-> String {\"\"} ; func unused() -> Explanation {")
        #expect(try entryPoint(ownExplain).explain == nil)
        let original = "func explain(_ variables: [String: JSON]) throws"
        for (replacement, words) in [
            ("static func explain(_ variables: [String: JSON]) throws", "a synchronous, non-mutating instance method"),
            ("func explain(_ variables: [String: Double]) throws", "both take the same variables"),
            ("func explain(_ variables: [String: JSON], _ more: Int) throws", "exactly one parameter"),
        ] {
            do {
                _ = try entryPoint(model.replacingOccurrences(of: original, with: replacement))
                Issue.record("\(replacement) was accepted")
            } catch let error as ModelBuildError {
                #expect(error.diagnostic.message.contains(words), "\(error.diagnostic.message)")
            }
        }
    }
}
