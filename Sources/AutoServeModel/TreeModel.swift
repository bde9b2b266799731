import Foundation

/// A gradient-boosted tree model served from the file its library saved (docs/models.md, "Models as data"): LightGBM's text
/// format or XGBoost's JSON, read in Swift when the version loads and scored by a flat-array walk of its trees.
///
/// The answers are the library's own, bit for bit: LightGBM's in `Double`, XGBoost's in `Float`, with the same
/// decisions for missing values and categories and the same order of additions.
public struct TreeModel: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case lightgbm, xgboost
    }

    /// What a row's answer holds (`output` in model.yaml).
    public enum Output: String, Sendable, CaseIterable, Codable {
        /// A classifier's probabilities, a regression's prediction (the default).
        case probability
        /// The scores before the objective's transformation (margins, log-odds).
        case raw
        /// A classifier's most probable class.
        case `class`
    }

    /// What the trees predict, and how raw scores become the answer.
    enum Task: Sendable {
        case regression(Transform)
        /// One score, turned into the probability of the second class.
        case binary(Transform)
        /// One score per class.
        case multiclass(classes: Int, Transform)
    }

    enum Transform: Sendable, Equatable {
        case identity
        /// `sign(x) * x * x` (LightGBM's `reg_sqrt`).
        case square
        case exponential
        /// `log(1 + exp(x))` (LightGBM's `cross_entropy_lambda`).
        case softplus
        /// LightGBM's `1 / (1 + exp(-sigmoid * x))`.
        case sigmoid(Double)
        /// XGBoost's sigmoid, in `Float`.
        case sigmoidFloat
        /// The softmax over the classes.
        case softmax
        /// XGBoost's softmax, in `Float`.
        case softmaxFloat
    }

    /// One input of the trees: the variable it is read from and, for a categorical feature, its categories.
    struct Feature: Sendable {
        var name: String
        var categorical = false
        /// Category → code, when the model file keeps the training categories.
        var codes: [CategoryKey: Int]?
        var categoryList: [String] = []
    }

    /// A category as the model file names it: a string or a number.
    enum CategoryKey: Hashable, Sendable {
        case string(String)
        case number(Double)
    }

    enum Trees: Sendable {
        case lightgbm(LightGBMForest)
        case xgboost(XGBoostForest)
    }

    let trees: Trees
    let task: Task
    let features: [Feature]
    /// The features' positions by name.
    let featureIndex: FeatureIndex
    public let output: Output
    public let classNames: [String]

    /// A categorical value never seen in training is refused (XGBoost) or scored as missing (LightGBM).
    var refusesUnseenCategories: Bool {
        if case .xgboost = trees { true } else { false }
    }

    /// Reads `file` (a path) as a model of `kind`. `features` renames the model's features to the variables that
    /// carry them (in the model's order); `classNames` labels the classes of a classifier.
    // Reading the file runs once per version: left unoptimized, it makes the model SDK (compiled at a server's first
    // start) seconds quicker to build, for a few tens of ms more load time.
    @_optimize(none)
    public init(kind: Kind, file: String, output: Output? = nil, classNames: [String]? = nil, features: [String]? = nil) throws {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TreeModelError(file: file, message: "cannot read the model file; check `file` in model.yaml")
        }
        try self.init(kind: kind, data: data, file: file, output: output, classNames: classNames, features: features)
    }

    /// Reads `data`, the contents of the model file `file`, as a model of `kind` (the fuzzers call this directly).
    @_optimize(none)
    init(kind: Kind, data: Data, file: String, output: Output? = nil, classNames: [String]? = nil, features: [String]? = nil) throws {
        let parsed: (trees: Trees, task: Task, features: [Feature])
        switch kind {
        case .lightgbm:
            let forest = try LightGBMForest(text: data, file: file)
            parsed = (.lightgbm(forest), forest.task, forest.features)
        case .xgboost:
            let forest = try XGBoostForest(data: data, file: file)
            parsed = (.xgboost(forest), forest.task, forest.features)
        }
        trees = parsed.trees
        task = parsed.task
        var modelFeatures = parsed.features
        if let features {
            guard features.count == modelFeatures.count else {
                throw TreeModelError(
                    file: file,
                    message:
                        "model.yaml lists \(features.count) features, and the model has \(modelFeatures.count) (\(modelFeatures.map(\.name).joined(separator: ", "))); list one variable per feature, in the model's order"
                )
            }
            for (position, name) in features.enumerated() { modelFeatures[position].name = name }
        }
        var names = Set<String>()
        for feature in modelFeatures where !names.insert(feature.name).inserted {
            throw TreeModelError(file: file, message: "two features are named '\(feature.name)'; name them apart with `features` in model.yaml")
        }
        self.features = modelFeatures
        featureIndex = FeatureIndex(modelFeatures.map(\.name))
        switch (parsed.task, output ?? .probability) {
        case (.regression, .class):
            throw TreeModelError(file: file, message: "output: class needs a classifier, and this model is a regression; use probability or raw")
        default: self.output = output ?? .probability
        }
        let classes: Int
        switch parsed.task {
        case .regression: classes = 0
        case .binary: classes = 2
        case .multiclass(let count, _): classes = count
        }
        if let classNames {
            guard classes > 0 else { throw TreeModelError(file: file, message: "class_names is for a classifier, and this model is a regression; remove it") }
            guard classNames.count == classes else {
                throw TreeModelError(
                    file: file,
                    message: "class_names has \(classNames.count) names, and the model has \(classes) classes; give one name per class, in the model's order")
            }
            guard Set(classNames).count == classNames.count else {
                throw TreeModelError(file: file, message: "class_names repeats a name; give each class its own")
            }
            self.classNames = classNames
        } else {
            self.classNames = (0..<classes).map(String.init)
        }
    }

    /// Scores one row of variables: the answer `output` asks for.
    public func predict(_ variables: [String: JSON]) throws -> [String: JSON] {
        predict(features: try values(of: variables))
    }

    /// Scores one row of features, in the model's order (NaN is a missing value): the answer `output` asks for.
    func predict(features: [Double]) -> [String: JSON] {
        let raw = output == .raw ? self.raw(features) : averaged(self.raw(features))
        switch task {
        case .regression(let transform):
            switch output {
            case .raw: return ["raw": .number(raw[0])]
            default: return ["prediction": .number(Self.apply(transform, raw)[0])]
            }
        case .binary(let transform):
            switch output {
            case .raw: return ["raw": .number(raw[0])]
            case .probability: return ["probability": .number(Self.apply(transform, raw)[0])]
            case .class: return ["class": .string(classNames[Self.apply(transform, raw)[0] > 0.5 ? 1 : 0])]
            }
        case .multiclass(_, let transform):
            switch output {
            case .raw: return ["raw": .object(Dictionary(uniqueKeysWithValues: zip(classNames, raw.map(JSON.number))))]
            case .probability:
                return ["probabilities": .object(Dictionary(uniqueKeysWithValues: zip(classNames, Self.apply(transform, raw).map(JSON.number))))]
            case .class:
                let probabilities = Self.apply(transform, raw)
                var best = 0
                for position in probabilities.indices where probabilities[position] > probabilities[best] { best = position }
                return ["class": .string(classNames[best])]
            }
        }
    }

    /// The library's plain `predict` of one row of features: probabilities, or the regression's prediction.
    public func value(_ features: [Double]) -> [Double] {
        switch task {
        case .regression(let transform), .binary(let transform), .multiclass(_, let transform): Self.apply(transform, averaged(raw(features)))
        }
    }

    /// The raw scores as the library's `predict` uses them: averaged over the iterations for a random forest.
    func averaged(_ raw: [Double]) -> [Double] {
        if case .lightgbm(let forest) = trees { return forest.averaged(raw) }
        return raw
    }

    /// The raw scores of one row of features (in the model's order; NaN is a missing value): one per class of a
    /// multiclass model, else one.
    public func raw(_ features: [Double]) -> [Double] {
        switch trees {
        case .lightgbm(let forest): forest.raw(features)
        case .xgboost(let forest): forest.raw(features).map(Double.init)
        }
    }

    /// The features of one row, by name: a missing variable or `null` is NaN (a missing value); a category is its
    /// code. A value of the wrong type is refused, naming the feature.
    public func values(of variables: [String: JSON]) throws -> [Double] {
        var values = [Double](repeating: .nan, count: features.count)
        for (name, value) in variables {
            guard let position = featureIndex.position(of: name) else { continue }
            if case .number(let number) = value, !features[position].categorical {
                values[position] = number
            } else {
                values[position] = try Self.value(value, of: features[position], refusingUnseen: refusesUnseenCategories)
            }
        }
        return values
    }

    static func value(_ value: JSON, of feature: Feature, refusingUnseen: Bool) throws -> Double {
        switch value {
        case .null: return .nan
        case .number(let number):
            guard feature.categorical, let codes = feature.codes else { return number }
            guard let code = codes[.number(number)] else {
                if codes.keys.contains(where: { if case .string = $0 { true } else { false } }) {
                    throw TreeVariablesError(
                        message:
                            "feature '\(feature.name)' is categorical: send one of its categories as a string (\(feature.categoryList.prefix(10).joined(separator: ", ")))"
                    )
                }
                return try unseen(Int(exactly: number).map(String.init) ?? "\(number)", of: feature, refusingUnseen: refusingUnseen)
            }
            return Double(code)
        case .bool(let flag):
            guard !feature.categorical else {
                throw TreeVariablesError(message: "feature '\(feature.name)' is categorical and got a boolean; send one of its categories")
            }
            return flag ? 1 : 0
        case .string(let text):
            guard feature.categorical else {
                throw TreeVariablesError(message: "feature '\(feature.name)' must be a number (or null when missing), not a string")
            }
            guard let codes = feature.codes else {
                throw TreeVariablesError(
                    message:
                        "feature '\(feature.name)' is categorical, and the model file does not keep its category names; send the category's code, a whole number"
                )
            }
            guard let code = codes[.string(text)] else { return try unseen(text, of: feature, refusingUnseen: refusingUnseen) }
            return Double(code)
        case .array, .object:
            throw TreeVariablesError(
                message:
                    "feature '\(feature.name)' must be a number\(feature.categorical ? " or a category" : "") (or null when missing), not \(value.array != nil ? "an array" : "an object")"
            )
        }
    }

    static func unseen(_ text: String, of feature: Feature, refusingUnseen: Bool) throws -> Double {
        guard refusingUnseen else { return .nan }
        throw ModelError.invalidInput(
            "category '\(text)' of feature '\(feature.name)' was not seen in training, and XGBoost refuses it; the known ones are \(feature.categoryList.prefix(20).joined(separator: ", "))"
        )
    }

    static func apply(_ transform: Transform, _ raw: [Double]) -> [Double] {
        switch transform {
        case .identity: return raw
        case .square: return raw.map { ($0 >= 0 ? 1 : -1) * $0 * $0 }
        case .exponential: return raw.map { exp($0) }
        case .softplus: return raw.map { log1p(exp($0)) }
        case .sigmoid(let scale): return raw.map { 1.0 / (1.0 + exp(-scale * $0)) }
        case .sigmoidFloat:
            return raw.map { value in
                // XGBoost's common::Sigmoid.
                let x = min(-Float(value), 88.7)
                let denominator = expf(x) + 1.0 + Float(1e-16)
                return Double(1.0 / denominator)
            }
        case .softmax:
            let largest = raw.max() ?? 0
            var exponentials = raw.map { exp($0 - largest) }
            var sum = 0.0
            for value in exponentials { sum += value }
            for position in exponentials.indices { exponentials[position] /= sum }
            return exponentials
        case .softmaxFloat:
            // XGBoost's common::Softmax: Float values, a Double sum.
            let values = raw.map(Float.init)
            var largest = values[0]
            for value in values.dropFirst() { largest = fmaxf(value, largest) }
            var exponentials = values.map { expf($0 - largest) }
            var sum = 0.0
            for value in exponentials { sum += Double(value) }
            for position in exponentials.indices { exponentials[position] /= Float(sum) }
            return exponentials.map(Double.init)
        }
    }
}

/// A model file that cannot be served, naming the file, the line when there is one, and what to do.
public struct TreeModelError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var line: Int?
    public var message: String

    public init(file: String, line: Int? = nil, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { "\((file as NSString).lastPathComponent)\(line.map { ":\($0)" } ?? ""): \(message)" }
}

/// A row whose variables do not fit the model's features: answered 400, as a typed model's decoding error is.
struct TreeVariablesError: Error {
    var message: String
}

/// The positions of a model's features by name, found from the name's bytes with a hash cheaper than `String`'s:
/// reading a row's variables is most of what a small model costs. A name that is not ASCII is looked up as a
/// `String` (whose equality is Unicode's canonical equivalence), and so is every name when a feature's is not ASCII.
struct FeatureIndex: Sendable {
    /// Open addressing: per bucket, a position + 1, or 0 when empty.
    private var buckets: [Int32] = []
    private var hashes: [UInt64] = []
    private var names: [[UInt8]] = []
    private var positions: [String: Int] = [:]
    private var ascii = true

    init(_ features: [String]) {
        for (position, name) in features.enumerated() { positions[name] = position }
        ascii = features.allSatisfy { $0.utf8.allSatisfy { $0 < 0x80 } }
        guard ascii else { return }
        buckets = [Int32](repeating: 0, count: max(4, 1 << (Int.bitWidth - (2 * features.count).leadingZeroBitCount)))
        for (position, name) in features.enumerated() {
            let bytes = Array(name.utf8)
            let hash = bytes.withUnsafeBufferPointer { Self.hash($0).value }
            names.append(bytes)
            hashes.append(hash)
            var bucket = Int(truncatingIfNeeded: hash) & (buckets.count - 1)
            while buckets[bucket] != 0 { bucket = (bucket + 1) & (buckets.count - 1) }
            buckets[bucket] = Int32(position + 1)
        }
    }

    /// FNV-1a of `bytes`, and whether they are ASCII.
    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> (value: UInt64, ascii: Bool) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var high: UInt8 = 0
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            high |= byte
        }
        return (hash, high < 0x80)
    }

    /// The position of the feature named `name`, if any.
    func position(of name: String) -> Int? {
        if ascii, let found = name.utf8.withContiguousStorageIfAvailable({ position(ofASCII: $0) }), let found {
            return found >= 0 ? found : nil
        }
        return positions[name]
    }

    /// The position of the feature named by `bytes` (UTF-8), if any: `String`'s equality decides for a name that is
    /// not ASCII.
    func position(ofBytes bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        if ascii, let found = position(ofASCII: bytes) { return found >= 0 ? found : nil }
        return positions[String(decoding: bytes, as: UTF8.self)]
    }

    /// The position of the feature named by `bytes`, -1 when none is, nil when the name is not ASCII.
    @inline(__always)
    private func position(ofASCII bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        let (hash, ascii) = Self.hash(bytes)
        guard ascii else { return nil }
        let mask = buckets.count - 1
        var bucket = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = Int(buckets[bucket])
            guard entry != 0 else { return -1 }
            if hashes[entry - 1] == hash && names[entry - 1].elementsEqual(bytes) { return entry - 1 }
            bucket = (bucket + 1) & mask
        }
    }
}

/// The bounds a model file must stay within (docs/models.md, "Models as data"): the counts a file declares but does not
/// back with data of its own (features without names, classes, a tree's leaves, category numbers) are checked against
/// them before anything is allocated, so that a file of a few bytes cannot ask for gigabytes.
public enum TreeModelLimits {
    /// Features of one model: a row names its variables in JSON, and 100,000 is far past any row's width.
    public static let features = 100_000
    /// Classes of a multiclass model.
    public static let classes = 10_000
    /// Leaves of one tree: LightGBM's own maximum of `num_leaves`.
    public static let leavesPerTree = 131_072
    /// The largest category number a categorical split may name (XGBoost's own bound: categories are `Float`s).
    public static let category = 1 << 24
    /// The words (32 bits) of every category bitset of a model together: 16 MiB.
    public static let categoryWords = 1 << 22
}
