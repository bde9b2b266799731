import ServingCore
import Testing

@testable import PluginBuilder

struct ModelManifestTests {
    @Test func aFullManifestParses() throws {
        let manifest = try ModelManifest.parse(
            """
            description: Iris classifier
            entrypoints:
              predict:
                type: Outer.Iris
                function: transform_predict
            examples:
              - variables: {sepal_length: 5.1, name: "5.1", flag: true, missing: null, tags: [a, 1]}
                expect: {iris_class: setosa}
              - variables: {}
            timeout_ms: 2000
            """,
            file: "Iris/model.yaml"
        )
        #expect(manifest.description == "Iris classifier")
        #expect(manifest.entryType == "Outer.Iris")
        #expect(manifest.entryTypeLine == 4)
        #expect(manifest.timeoutMilliseconds == 2000)
        #expect(manifest.examples.count == 2)
        #expect(manifest.examples[0].line == 7)
        #expect(
            manifest.examples[0].variables
                == .object([
                    "sepal_length": .number(5.1), "name": .string("5.1"), "flag": .bool(true), "missing": .null,
                    "tags": .array([.string("a"), .number(1)]),
                ]))
        #expect(manifest.examples[0].expect == .object(["iris_class": .string("setosa")]))
        #expect(manifest.examples[1].expect == nil)
    }

    @Test func aDriftReferenceParses() throws {
        let manifest = try ModelManifest.parse("drift:\n  reference: data/reference.csv\n  window: 500\n", file: "M/model.yaml")
        #expect(manifest.drift == DriftSettings(reference: "data/reference.csv", window: 500))
        #expect(try ModelManifest.parse("drift: {reference: r.jsonl}\n", file: "M/model.yaml").drift?.window == 1000)
    }

    @Test func aDataModelManifestParses() throws {
        let manifest = try ModelManifest.parse(
            "kind: xgboost\nfile: models/booster.json\noutput: class\nclass_names: [no, yes]\nfeatures: [a, b]\n", file: "M/model.yaml")
        #expect(manifest.kind == .xgboost)
        #expect(manifest.kindLine == 1)
        #expect(manifest.treeModel == TreeModelSettings(file: "models/booster.json", output: .class, classNames: ["no", "yes"], features: ["a", "b"]))
        #expect(try ModelManifest.parse("kind: lightgbm\n", file: "M/model.yaml").treeModel?.file == "model.txt")
        #expect(try ModelManifest.parse("kind: xgboost\n", file: "M/model.yaml").treeModel?.file == "model.json")
        #expect(try ModelManifest.parse("", file: "M/model.yaml").kind == .swift)
    }

    @Test func anEmptyManifestMeansDefaults() throws {
        let manifest = try ModelManifest.parse("", file: "M/model.yaml")
        #expect(manifest.entryFunction == "transform_predict")
        #expect(manifest.entryType == nil)
        #expect(manifest.examples.isEmpty)
    }

    @Test(arguments: [
        ("descripton: typo\n", 1, "unknown key 'descripton'"),
        ("timeout_ms: fast\n", 1, "timeout_ms must be a whole number"),
        ("timeout_ms: 1.5\n", 1, "timeout_ms must be a whole number"),
        ("timeout_ms: -3\n", 1, "timeout_ms must be a whole number"),
        ("examples: {variables: {}}\n", 1, "examples must be a list"),
        ("examples:\n  - expect: {a: 1}\n", 2, "an example needs variables"),
        ("examples:\n  - variables: [1, 2]\n", 2, "variables must be a mapping"),
        ("entrypoints:\n  predict:\n    type: 'not valid'\n", 3, "must be a Swift identifier"),
        ("entrypoints:\n  train: {}\n", 2, "unknown key 'train'"),
        ("description: [unclosed\n", 2, "not valid YAML"),
        ("- a list\n", 1, "model.yaml must be a mapping"),
        // Values that once wrapped (a worker killed every 0.1 s) or overflowed a deadline.
        ("memory_mb: 17592186044416\n", 1, "memory_mb must be a whole number of megabytes from 1 to 1048576"),
        ("timeout_ms: 9223372036854775807\n", 1, "timeout_ms must be a whole number of milliseconds from 1 to 86400000"),
        ("workers: 65\n", 1, "workers must be a whole number from 1 to 64"),
        ("drift: {window: 100}\n", 1, "drift needs reference"),
        ("drift:\n  reference: ../secrets.jsonl\n", 2, "must be a path inside the model folder"),
        ("drift:\n  reference: /etc/passwd\n", 2, "must be a path inside the model folder"),
        ("drift:\n  reference: r.jsonl\n  window: 5\n", 3, "drift.window must be a whole number of rows from 10 to 100000"),
        ("drift:\n  reference: r.jsonl\n  sample: 5\n", 3, "unknown key 'sample' in drift"),
        ("kind: onnx\n", 1, "kind must be one of swift, lightgbm, xgboost, not 'onnx'"),
        ("file: model.txt\n", 1, "file is for a trained model file; add kind: lightgbm or kind: xgboost"),
        ("kind: lightgbm\nfile: ../other/model.txt\n", 2, "file must be a path inside the model folder"),
        ("kind: lightgbm\noutput: probabilities\n", 2, "output must be one of probability, raw, class, not 'probabilities'"),
        ("kind: xgboost\nclass_names: yes\n", 2, "class_names must be a list of names"),
        ("kind: xgboost\nfeatures: []\n", 2, "features must be a list of names"),
        ("kind: lightgbm\nentrypoints:\n  predict: {type: M}\n", 3, "entrypoints is for Swift models"),
    ])
    func aBadManifestNamesTheLine(text: String, line: Int, fragment: String) {
        #expect {
            try ModelManifest.parse(text, file: "M/model.yaml")
        } throws: { error in
            guard let error = error as? ManifestError else { return false }
            return error.diagnostic.line == line && error.diagnostic.message.contains(fragment) && error.diagnostic.file == "M/model.yaml"
        }
    }
}

extension ModelManifestTests {
    /// `explain:` (docs/explanations.md, "model.yaml"): false, true, or top and names; anything else says what it takes.
    @Test func explainSettingsParse() throws {
        #expect(try ModelManifest.parse("description: x\n", file: "M/model.yaml").explain == ExplainSettings())
        #expect(try ModelManifest.parse("explain: false\n", file: "M/model.yaml").explain.enabled == false)
        #expect(try ModelManifest.parse("explain: true\n", file: "M/model.yaml").explain == ExplainSettings())
        let full = try ModelManifest.parse("explain:\n  top: 3\n  names: {late_payments: Number of late payments, age: Age}\n", file: "M/model.yaml")
        #expect(full.explain == ExplainSettings(enabled: true, top: 3, names: ["late_payments": "Number of late payments", "age": "Age"]))
        for (text, words) in [
            ("explain: yes please\n", "explain must be true, false, or a mapping"),
            ("explain:\n  top: 0\n", "explain.top must be a whole number of features from 1 to 1000"),
            ("explain:\n  top: 2.5\n", "explain.top must be a whole number"),
            ("explain:\n  names: [a, b]\n", "explain.names must map feature names"),
            ("explain:\n  names: {a: 1}\n", "explain.names.a must be a string"),
            ("explain:\n  colour: red\n", "colour"),
        ] {
            #expect(throws: ManifestError.self, "\(text)") { try ModelManifest.parse(text, file: "M/model.yaml") }
            do {
                _ = try ModelManifest.parse(text, file: "M/model.yaml")
            } catch {
                #expect(error.diagnostic.message.contains(words), "\(text): \(error.diagnostic.message)")
                #expect(error.diagnostic.line != nil, "\(text): no line")
            }
        }
    }
}
