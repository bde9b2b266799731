import Foundation

/// The trees of a LightGBM text model (`Booster.save_model`), laid out by ``TreeLanes``, with LightGBM's
/// `Tree::NumericalDecision` and `Tree::CategoricalDecision` at each split and `GBDT::PredictRaw`'s order of additions.
///
/// A class: a row's scoring takes the forest out of the model's enum more than once, and a copy of a class is one
/// retain, where a struct's would retain each of its arrays. `@unchecked Sendable`: written while the model loads,
/// only read after.
final class LightGBMForest: @unchecked Sendable {
    var lanes = TreeLanes(features: 0, strict: false)
    /// The category sets of the categorical splits (LightGBM's `cat_threshold` bitsets, left when in the set).
    var categories = CategorySets()
    var treesPerIteration = 1
    var averageOutput = false
    var task: TreeModel.Task = .regression(.identity)
    var features: [TreeModel.Feature] = []
    /// The trees as its explanations read them (TreeModel+Explain.swift), unless they cannot be explained.
    var shap: ShapForest<Double>?
    /// Why the trees cannot be explained (``ShapTrees/refusal``), found once: every explained row asks.
    var explanationRefusal: String?

    /// LightGBM's kZeroThreshold, a float.
    static let zeroThreshold = Double(Float(1e-35))

    /// The kinds of special split: a categorical one (its number is the category set) and a zero-as-missing one
    /// (its number is the threshold).
    static let categorical: UInt8 = 0
    static let zeroMissing: UInt8 = 1

    // Reading the file runs once per version: left unoptimized, it makes the model SDK (compiled at a server's first
    // start) seconds quicker to build, for a few tens of ms more load time.
    @_optimize(none)
    init(text data: Data, file: String) throws {
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        func fail(_ line: Int?, _ message: String) -> TreeModelError { TreeModelError(file: file, line: line.map { $0 + 1 }, message: message) }
        guard lines.first?.trimmingCharacters(in: .whitespaces) == "tree" else {
            throw fail(0, "this is not a LightGBM text model (its first line is not `tree`); save it with Booster.save_model(\"model.txt\")")
        }
        // The header: key=value lines up to the first tree.
        var header: [Substring: (value: Substring, line: Int)] = [:]
        var position = 1
        while position < lines.count, !lines[position].hasPrefix("Tree=") {
            let line = lines[position]
            if line.hasPrefix("end of trees") { break }
            if let equals = line.firstIndex(of: "=") {
                header[line[..<equals]] = (line[line.index(after: equals)...], position)
            } else if !line.isEmpty {
                header[line] = ("", position)
            }
            position += 1
        }
        averageOutput = header["average_output"] != nil
        func integer(_ key: Substring) throws -> Int {
            guard let entry = header[key] else { throw fail(nil, "the header has no \(key)=; is the file whole?") }
            guard let value = Int(entry.value) else { throw fail(entry.line, "\(key)=\(entry.value) is not a whole number") }
            return value
        }
        let classes = try integer("num_class")
        treesPerIteration = try integer("num_tree_per_iteration")
        let largestFeature = try integer("max_feature_idx")
        guard classes >= 1, treesPerIteration >= 1, largestFeature >= 0 else {
            throw fail(nil, "num_class and num_tree_per_iteration must be positive, and max_feature_idx at least 0")
        }
        for (key, value, limit) in [("num_class", classes, TreeModelLimits.classes), ("num_tree_per_iteration", treesPerIteration, TreeModelLimits.classes)]
        where value > limit {
            throw fail(header[Substring(key)]?.line, "\(key)=\(value) is over the limit of \(limit) classes; AutoServe serves models of up to \(limit) classes")
        }
        guard largestFeature < TreeModelLimits.features else {
            throw fail(
                header["max_feature_idx"]?.line,
                "max_feature_idx=\(largestFeature) is over the limit of \(TreeModelLimits.features) features; AutoServe serves models of up to \(TreeModelLimits.features) features"
            )
        }
        let featureCount = largestFeature + 1
        guard let objective = header["objective"] else {
            throw fail(nil, "the model has no objective= line (a custom objective?); AutoServe needs the objective to turn scores into answers")
        }
        task = try Self.task(objective.value, classes: classes, treesPerIteration: treesPerIteration, fail: { fail(objective.line, $0) })
        let names = header["feature_names"].map { $0.value.split(separator: " ").map(String.init) } ?? (0..<featureCount).map { "Column_\($0)" }
        guard names.count == featureCount else {
            throw fail(header["feature_names"]?.line, "feature_names lists \(names.count) names for \(featureCount) features")
        }
        let infos = header["feature_infos"].map { $0.value.split(separator: " ") } ?? []
        features = names.enumerated().map { index, name in
            var feature = TreeModel.Feature(name: name)
            if index < infos.count, !infos[index].hasPrefix("["), infos[index] != "none" { feature.categorical = true }
            return feature
        }
        // The trees.
        lanes = TreeLanes(features: featureCount, strict: false)
        var trees = 0
        while position < lines.count, lines[position].hasPrefix("Tree=") {
            let start = position
            var fields: [Substring: (value: Substring, line: Int)] = [:]
            position += 1
            while position < lines.count, !lines[position].isEmpty, !lines[position].hasPrefix("Tree="), !lines[position].hasPrefix("end of trees") {
                let line = lines[position]
                if let equals = line.firstIndex(of: "=") { fields[line[..<equals]] = (line[line.index(after: equals)...], position) }
                position += 1
            }
            try addTree(fields, start: start, featureCount: featureCount, fail: fail)
            trees += 1
            while position < lines.count, lines[position].isEmpty { position += 1 }
        }
        guard position < lines.count, lines[position].hasPrefix("end of trees") else {
            throw fail(min(position, lines.count - 1), "expected `end of trees` after the last tree; is the file whole?")
        }
        guard trees > 0, trees % treesPerIteration == 0 else {
            throw fail(nil, "the model has \(trees) trees, not a whole number of iterations of \(treesPerIteration)")
        }
        let shapTrees: ShapTrees
        do { shapTrees = try lanes.finish() } catch { throw fail(nil, error.message) }
        explanationRefusal = shapTrees.refusal
        if explanationRefusal == nil {
            shap = ShapForest(shapTrees, quadrature: Self.quadrature(shapTrees, features: featureCount)) { trees, _ in Self.expectedValues(trees) }
        }
        // pandas' categories, when the model was trained on a DataFrame: one list per categorical column, in order.
        if let line = lines.lastIndex(where: { $0.hasPrefix("pandas_categorical:") }) {
            try readPandasCategories(lines[line].dropFirst("pandas_categorical:".count), line: line, fail: fail)
        }
    }

    // Reading the file runs once per version: left unoptimized, it makes the model SDK (compiled at a server's first
    // start) seconds quicker to build, for a few tens of ms more load time.
    @_optimize(none)
    static func task(_ objective: Substring, classes: Int, treesPerIteration: Int, fail: (String) -> TreeModelError) throws -> TreeModel.Task {
        let words = objective.split(separator: " ")
        let name = words.first.map(String.init) ?? ""
        var sigmoid = 1.0
        for word in words.dropFirst() where word.hasPrefix("sigmoid:") {
            // A sigmoid of NaN, infinity or 0 or less makes every answer NaN or constant: LightGBM refuses it too.
            guard let value = Double(word.dropFirst("sigmoid:".count)), value.isFinite, value > 0 else {
                throw fail("objective=\(objective): sigmoid must be a positive number, as LightGBM requires")
            }
            sigmoid = value
        }
        func single(_ task: TreeModel.Task) throws -> TreeModel.Task {
            guard treesPerIteration == 1 else { throw fail("objective \(name) with \(treesPerIteration) trees per iteration") }
            return task
        }
        switch name {
        case "binary": return try single(.binary(.sigmoid(sigmoid)))
        case "cross_entropy", "xentropy": return try single(.regression(.sigmoid(1)))
        case "cross_entropy_lambda", "xentlambda": return try single(.regression(.softplus))
        case "regression", "regression_l2", "l2", "mean_squared_error", "mse", "regression_l1", "l1", "mean_absolute_error", "mae", "huber", "fair",
            "quantile", "mape", "mean_absolute_percentage_error":
            return try single(.regression(words.contains("sqrt") ? .square : .identity))
        case "poisson", "gamma", "tweedie": return try single(.regression(.exponential))
        case "multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr":
            guard classes == treesPerIteration, classes >= 2 else {
                throw fail("objective \(name) with num_class=\(classes) and \(treesPerIteration) trees per iteration")
            }
            let oneVersusRest = ["multiclassova", "multiclass_ova", "ova", "ovr"].contains(name)
            return .multiclass(classes: classes, oneVersusRest ? .sigmoid(sigmoid) : .softmax)
        default:
            throw fail(
                "objective '\(name)' is not supported; AutoServe serves binary, multiclass, multiclassova, cross_entropy, the regression objectives (regression, regression_l1, huber, fair, quantile, mape, poisson, gamma, tweedie)"
            )
        }
    }

    // Reading the file runs once per version: left unoptimized, it makes the model SDK (compiled at a server's first
    // start) seconds quicker to build, for a few tens of ms more load time.
    @_optimize(none)
    func addTree(_ fields: [Substring: (value: Substring, line: Int)], start: Int, featureCount: Int, fail: (Int?, String) -> TreeModelError) throws {
        func field(_ key: Substring) throws -> (value: Substring, line: Int) {
            guard let entry = fields[key] else { throw fail(start, "this tree has no \(key)=; is the file whole?") }
            return entry
        }
        func numbers<T: LosslessStringConvertible>(_ key: Substring, _: T.Type, count: Int) throws -> [T] {
            let entry = try field(key)
            var values: [T] = []
            // The count is checked against the file's own words: a line cannot promise more than it holds.
            values.reserveCapacity(min(count, entry.value.utf8.count / 2 + 1))
            for word in entry.value.split(separator: " ") {
                guard let value = T(String(word)) else { throw fail(entry.line, "\(key) holds '\(word)', which is not a number") }
                values.append(value)
            }
            guard values.count == count else { throw fail(entry.line, "\(key) has \(values.count) values; the tree needs \(count)") }
            return values
        }
        if let linear = fields["is_linear"], linear.value != "0" {
            throw fail(linear.line, "linear trees (linear_tree=true) are not supported; train without linear_tree")
        }
        let leavesField = try field("num_leaves")
        guard let leafCount = Int(leavesField.value), leafCount >= 1 else {
            throw fail(leavesField.line, "num_leaves=\(leavesField.value) is not a positive whole number")
        }
        guard leafCount <= TreeModelLimits.leavesPerTree else {
            throw fail(
                leavesField.line, "num_leaves=\(leafCount) is over the limit of \(TreeModelLimits.leavesPerTree) leaves per tree (LightGBM's own maximum)")
        }
        let values = try numbers("leaf_value", Double.self, count: leafCount)
        if let bad = values.first(where: { !$0.isFinite }) {
            throw fail(try field("leaf_value").line, "leaf_value holds \(bad); every leaf must be a finite number (the rows that reach it would fail)")
        }
        let splitCount = leafCount - 1
        var splits: [TreeLanes.Split] = []
        if splitCount > 0 {
            let feature = try numbers("split_feature", Int.self, count: splitCount)
            let threshold = try numbers("threshold", Double.self, count: splitCount)
            let decision = try numbers("decision_type", Int.self, count: splitCount)
            let left = try numbers("left_child", Int.self, count: splitCount)
            let right = try numbers("right_child", Int.self, count: splitCount)
            let categoryField = fields["num_cat"]
            // Each categorical split has a set of its own: a tree has at most as many sets as splits.
            guard let categoryCount = categoryField.map({ Int($0.value) }) ?? 0, (0...splitCount).contains(categoryCount) else {
                throw fail(
                    categoryField?.line,
                    "num_cat=\(categoryField?.value ?? "") is not a whole number from 0 to the tree's \(splitCount) splits")
            }
            let categoryOffset = categories.count
            if categoryCount > 0 {
                let bounds = try numbers("cat_boundaries", Int.self, count: categoryCount + 1)
                let entry = try field("cat_threshold")
                let words = try entry.value.split(separator: " ").map { word in
                    guard let value = UInt32(String(word)) else { throw fail(entry.line, "cat_threshold holds '\(word)', which is not a bitset word") }
                    return value
                }
                guard bounds.first == 0, bounds.last == words.count, zip(bounds, bounds.dropFirst()).allSatisfy({ $0 <= $1 }) else {
                    throw fail(entry.line, "cat_boundaries do not match cat_threshold")
                }
                guard categories.bits.count <= TreeModelLimits.categoryWords - words.count else {
                    throw fail(entry.line, CategorySets.tooLarge)
                }
                for (start, end) in zip(bounds, bounds.dropFirst()) { _ = categories.add(words: words[start..<end]) }
            }
            for index in 0..<splitCount {
                guard (0..<featureCount).contains(feature[index]) else {
                    throw fail(try field("split_feature").line, "split_feature names feature \(feature[index]) of \(featureCount)")
                }
                let type = decision[index]
                var split = TreeLanes.Split(
                    feature: feature[index], threshold: threshold[index], left: left[index], right: right[index], nanLeft: type & 2 != 0)
                if type & 1 != 0 {
                    // The threshold of a categorical split is the number of its set: a whole number, in range.
                    guard let set = Int(exactly: threshold[index]), (0..<categoryCount).contains(set) else {
                        throw fail(try field("threshold").line, "a categorical split names category set \(threshold[index]) of \(categoryCount)")
                    }
                    split.special = Self.categorical
                    split.threshold = Double(categoryOffset + set)
                } else {
                    guard !threshold[index].isNaN else { throw fail(try field("threshold").line, "threshold holds nan; a split needs a number") }
                    switch (type >> 2) & 3 {
                    case 0: split.nanLeft = 0 <= threshold[index]  // NaN counts as 0
                    case 1: split.special = Self.zeroMissing  // zero (and NaN) take the default direction
                    case 2: break  // NaN takes the default direction
                    default: throw fail(try field("decision_type").line, "decision_type \(type) has an unknown missing type")
                    }
                }
                splits.append(split)
            }
        }
        // The counts of training rows at each node, which TreeSHAP weighs by: an older file without them serves, and
        // cannot explain (``ShapTrees/refusal``).
        var leafCovers: [Double]?
        if fields["leaf_count"] != nil, splitCount == 0 || fields["internal_count"] != nil {
            leafCovers = try numbers("leaf_count", Double.self, count: leafCount)
            if splitCount > 0 {
                for (index, count) in try numbers("internal_count", Double.self, count: splitCount).enumerated() { splits[index].cover = count }
            }
        }
        guard lanes.add(splits: splits, leaves: values, leafCovers: leafCovers) != nil else {
            throw fail(start, "left_child and right_child do not make a tree of \(splitCount) splits and \(leafCount) leaves")
        }
    }

    // Reading the file runs once per version: left unoptimized, it makes the model SDK (compiled at a server's first
    // start) seconds quicker to build, for a few tens of ms more load time.
    @_optimize(none)
    func readPandasCategories(_ text: Substring, line: Int, fail: (Int?, String) -> TreeModelError) throws {
        guard text.trimmingCharacters(in: .whitespaces) != "null" else { return }
        guard let lists = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[Any]] else {
            throw fail(line, "pandas_categorical is not a list of lists of categories")
        }
        let categorical = features.indices.filter { features[$0].categorical }
        guard lists.count == categorical.count else {
            throw fail(line, "pandas_categorical has \(lists.count) lists of categories for \(categorical.count) categorical features")
        }
        for (list, index) in zip(lists, categorical) {
            var codes: [TreeModel.CategoryKey: Int] = [:]
            var names: [String] = []
            for (code, category) in list.enumerated() {
                if let text = category as? String {
                    codes[.string(text)] = code
                    names.append(text)
                } else if let number = category as? NSNumber {
                    codes[.number(number.doubleValue)] = code
                    names.append(number.stringValue)
                } else {
                    throw fail(line, "pandas_categorical holds a category that is neither a string nor a number")
                }
            }
            features[index].codes = codes
            features[index].categoryList = names
        }
    }

    /// The raw scores of one row, as LightGBM's `PredictRaw`: one per tree of an iteration, summed over the
    /// iterations in order.
    func raw(_ features: [Double]) -> [Double] {
        lanes.score(features, special: special) { leaves in
            var scores = [Double](repeating: 0, count: treesPerIteration)
            // One score (binary, regression) is added up in a register: through the array, the additions of a
            // 500-tree model cost a microsecond more.
            if treesPerIteration == 1 {
                var sum = 0.0
                for tree in 0..<lanes.treeCount { sum += leaves[tree] }
                scores[0] = sum
            } else {
                var score = 0
                for tree in 0..<lanes.treeCount {
                    scores[score] += leaves[tree]
                    score = score + 1 == treesPerIteration ? 0 : score + 1
                }
            }
            return scores
        }
    }

    /// The raw scores as `Predict` turns them into an answer: a random forest's (`average_output`) averaged over
    /// its iterations. (`predict(raw_score=True)` does not average them.)
    func averaged(_ scores: [Double]) -> [Double] {
        guard averageOutput else { return scores }
        let iterations = Double(lanes.treeCount / treesPerIteration)
        return scores.map { $0 / iterations }
    }

    /// A zero-as-missing split (`Tree::NumericalDecision` with missing type Zero) or a categorical one
    /// (`Tree::CategoricalDecision`); true: left.
    func special(_ split: TreeLanes.Special, _ value: Double) -> Bool {
        if split.kind == Self.zeroMissing {
            if value.isNaN || (value >= -Self.zeroThreshold && value <= Self.zeroThreshold) { return split.nanLeft }
            return value <= split.number
        }
        // NaN and negative values go right; the integer part is looked up in the split's bitset.
        guard !value.isNaN, value > -1, value < 2_147_483_648 else { return false }
        return categories.contains(Int(split.number), Int(value))
    }
}
