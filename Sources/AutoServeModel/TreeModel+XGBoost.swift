import Foundation

/// The trees of an XGBoost JSON model (`Booster.save_model("model.json")`, a `gbtree` booster), flattened and scored
/// as XGBoost's CPU predictor does: features as `Float`, `value < split_condition` goes left, a missing value takes
/// the node's default direction, and each tree's leaf is added in `Float` to its class's score, which starts at the
/// base score's margin.
///
/// A class, as ``LightGBMForest`` is: a row's copy of it is one retain.
final class XGBoostForest: @unchecked Sendable {
    var lanes = TreeLanes(features: 0, strict: true)
    /// The category sets of the categorical splits (the categories that go right).
    var categories = CategorySets()
    /// The class each tree adds to.
    var groups: [Int32] = []
    /// The starting score of each class, as a margin.
    var base: [Float] = []
    var task: TreeModel.Task = .regression(.identity)
    var features: [TreeModel.Feature] = []
    /// The trees as its explanations read them, in `Float`, each tree's expected value its mean value
    /// (TreeModel+Explain.swift), unless they cannot be explained.
    var shap: ShapForest<Float>?
    /// Why the trees cannot be explained (``ShapTrees/refusal``), found once: every explained row asks.
    var explanationRefusal: String?

    // Reading the file runs once per version: left unoptimized, it makes the model SDK (compiled at a server's first
    // start) seconds quicker to build, for a few tens of ms more load time.
    @_optimize(none)
    init(data: Data, file: String) throws {
        func fail(_ message: String) -> TreeModelError { TreeModelError(file: file, message: message) }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw fail("this is not an XGBoost JSON model (it is not a JSON object); save it with Booster.save_model(\"model.json\")")
        }
        guard let learner = root["learner"] as? [String: Any], let booster = learner["gradient_booster"] as? [String: Any],
            let parameters = learner["learner_model_param"] as? [String: Any]
        else {
            throw fail("the JSON has no learner.gradient_booster; is it a model saved by XGBoost's save_model (not a config or a dump)?")
        }
        let boosterName = booster["name"] as? String ?? "?"
        guard boosterName == "gbtree" else {
            let hint = boosterName == "dart" ? "a dart booster drops trees at random in training and weighs them at prediction" : "only tree boosters are"
            throw fail("booster '\(boosterName)' is not supported (\(hint)); AutoServe serves gbtree models")
        }
        guard let model = booster["model"] as? [String: Any], let trees = model["trees"] as? [[String: Any]],
            let treeNumbers = model["tree_info"] as? [NSNumber]
        else { throw fail("gradient_booster.model has no trees") }
        guard let treeInfo = Self.wholeNumbers(treeNumbers) else { throw fail("tree_info holds a value that is not a whole number") }
        /// A count of `learner_model_param` (a whole number written as a string), within `limit`; `fallback` when absent.
        func parameter(_ key: String, fallback: Int, limit: Int, what: String) throws -> Int {
            guard let text = parameters[key] else { return fallback }
            guard let value = (text as? String).flatMap({ Int($0) }), value >= 0 else {
                throw fail("learner_model_param.\(key) is \(text), not a whole number")
            }
            guard value <= limit else {
                throw fail("\(key) is \(value), over the limit of \(limit) \(what); AutoServe serves models of up to \(limit) \(what)")
            }
            return value
        }
        let featureCount = try parameter("num_feature", fallback: 0, limit: TreeModelLimits.features, what: "features")
        let classCount = max(try parameter("num_class", fallback: 0, limit: TreeModelLimits.classes, what: "classes"), 1)
        if let targets = Int(parameters["num_target"] as? String ?? "1"), targets > 1 {
            throw fail("a model of \(targets) targets is not supported; train one model per target")
        }
        let objective = (learner["objective"] as? [String: Any])?["name"] as? String ?? "?"
        let margin: (Float) -> Float
        switch objective {
        case "binary:logistic", "reg:logistic":
            task = .binary(.sigmoidFloat)
            margin = { -logf(1 / $0 - 1) }
        case "binary:logitraw":
            task = .binary(.identity)
            margin = { -logf(1 / $0 - 1) }
        case "multi:softprob", "multi:softmax":
            task = .multiclass(classes: classCount, .softmaxFloat)
            margin = { $0 }
        case "reg:squarederror", "reg:linear", "reg:absoluteerror", "reg:pseudohubererror", "reg:squaredlogerror", "reg:quantileerror":
            task = .regression(.identity)
            margin = { $0 }
        case "count:poisson", "reg:gamma", "reg:tweedie":
            task = .regression(.exponential)
            margin = { logf($0) }
        default:
            throw fail(
                "objective '\(objective)' is not supported; AutoServe serves binary:logistic, binary:logitraw, reg:logistic, multi:softprob, multi:softmax, reg:squarederror (and the other reg: objectives), count:poisson, reg:gamma and reg:tweedie"
            )
        }
        if case .multiclass = task, classCount < 2 { throw fail("objective \(objective) with num_class=\(classCount)") }
        // base_score: "5E-1" before XGBoost 3, "[5E-1]" or one value per class since.
        let baseText = (parameters["base_score"] as? String ?? "0.5").trimmingCharacters(in: CharacterSet(charactersIn: "[] "))
        let baseScores = try baseText.split(separator: ",").map { word in
            guard let value = Float(word.trimmingCharacters(in: .whitespaces)) else { throw fail("base_score '\(baseText)' is not a number") }
            return value
        }
        let classes = { if case .multiclass(let count, _) = task { count } else { 1 } }()
        guard baseScores.count == 1 || baseScores.count == classes else { throw fail("base_score has \(baseScores.count) values for \(classes) classes") }
        base = (0..<classes).map { margin(baseScores[baseScores.count == 1 ? 0 : $0]) }
        // A base score outside the objective's range (NaN, a probability of 0 or 1 or more) gives every row the same
        // NaN or infinite margin: every answer would fail.
        if let bad = base.indices.first(where: { !base[$0].isFinite }) {
            throw fail("base_score '\(baseText)' gives class \(bad) no finite margin under \(objective); every answer would fail")
        }
        guard trees.count == treeInfo.count else { throw fail("tree_info has \(treeInfo.count) entries for \(trees.count) trees") }
        // Features: names, types and the training categories (XGBoost 3 keeps them in the model).
        let names = learner["feature_names"] as? [String] ?? []
        let types = learner["feature_types"] as? [String] ?? []
        let count = max(featureCount, names.count)
        guard count <= TreeModelLimits.features else {
            throw fail(
                "the model has \(count) features, over the limit of \(TreeModelLimits.features); AutoServe serves models of up to \(TreeModelLimits.features) features"
            )
        }
        features = (0..<count).map { index in
            var feature = TreeModel.Feature(name: index < names.count ? names[index] : "f\(index)")
            feature.categorical = index < types.count && types[index] == "c"
            return feature
        }
        if let encodings = (model["cats"] as? [String: Any])?["enc"] as? [[String: Any]], !encodings.isEmpty {
            guard encodings.count == count else { throw fail("cats.enc has \(encodings.count) entries for \(count) features") }
            for (index, encoding) in encodings.enumerated() {
                let values = encoding["values"] as? [NSNumber] ?? []
                guard !values.isEmpty else { continue }
                var codes: [TreeModel.CategoryKey: Int] = [:]
                var list: [String] = []
                if let offsetNumbers = encoding["offsets"] as? [NSNumber], !offsetNumbers.isEmpty {
                    // Strings: the UTF-8 bytes of every category one after the other, cut at the offsets.
                    guard let offsets = Self.wholeNumbers(offsetNumbers), let whole = Self.wholeNumbers(values), whole.allSatisfy({ (0...255).contains($0) })
                    else { throw fail("cats.enc of feature \(index) holds offsets or bytes that are not whole numbers of their range") }
                    let bytes = whole.map { UInt8($0) }
                    for (start, end) in zip(offsets, offsets.dropFirst()) {
                        guard start >= 0, start <= end, end <= bytes.count else { throw fail("cats.enc of feature \(index) has offsets outside its values") }
                        let name = String(decoding: bytes[start..<end], as: UTF8.self)
                        codes[.string(name)] = list.count
                        list.append(name)
                    }
                } else {
                    for value in values {
                        codes[.number(value.doubleValue)] = list.count
                        list.append(value.stringValue)
                    }
                }
                features[index].codes = codes
                features[index].categoryList = list
            }
        }
        lanes = TreeLanes(features: count, strict: true)
        for (index, tree) in trees.enumerated() {
            let group = treeInfo[index]
            guard (0..<classes).contains(group) else { throw fail("tree \(index) adds to class \(group) of \(classes)") }
            try addTree(tree, number: index, featureCount: count, fail: fail)
            groups.append(Int32(group))
        }
        let shapTrees: ShapTrees
        do { shapTrees = try lanes.finish() } catch { throw fail(error.message) }
        explanationRefusal = shapTrees.refusal
        if explanationRefusal == nil { shap = ShapForest(shapTrees) { trees, tables in Self.means(tables, trees) } }
    }

    // Reading the file runs once per version: left unoptimized, it makes the model SDK (compiled at a server's first
    // start) seconds quicker to build, for a few tens of ms more load time.
    @_optimize(none)
    func addTree(_ tree: [String: Any], number: Int, featureCount: Int, fail: (String) -> TreeModelError) throws {
        func array(_ key: String) throws -> [NSNumber] {
            guard let values = tree[key] as? [NSNumber] else { throw fail("tree \(number) has no \(key)") }
            return values
        }
        func whole(_ key: String) throws -> [Int] {
            guard let values = Self.wholeNumbers(try array(key)) else { throw fail("tree \(number): \(key) holds a value that is not a whole number") }
            return values
        }
        if let parameters = tree["tree_param"] as? [String: Any], let size = Int(parameters["size_leaf_vector"] as? String ?? "1"), size > 1 {
            throw fail("tree \(number) has vector leaves (multi_strategy=\"multi_output_tree\"), which are not supported")
        }
        let left = try whole("left_children")
        let right = try whole("right_children")
        let conditions = try array("split_conditions").map(\.floatValue)
        let indices = try whole("split_indices")
        let defaults = try whole("default_left")
        let count = left.count
        guard count > 0, [right.count, conditions.count, indices.count, defaults.count].allSatisfy({ $0 == count }) else {
            throw fail("tree \(number): its node arrays differ in length")
        }
        let types = try tree["split_type"] == nil ? [] : whole("split_type")
        // Categorical splits: node → the categories that go right.
        var categorySets: [Int: [Int]] = [:]
        if types.contains(1) {
            let categoryNodes = try whole("categories_nodes")
            let segments = try whole("categories_segments")
            let sizes = try whole("categories_sizes")
            let categories = try whole("categories")
            guard categoryNodes.count == segments.count, segments.count == sizes.count else {
                throw fail("tree \(number): its category arrays differ in length")
            }
            for (node, (segment, size)) in zip(categoryNodes, zip(segments, sizes)) {
                guard segment >= 0, size >= 0, segment <= categories.count, size <= categories.count - segment else {
                    throw fail("tree \(number): a category segment is out of range")
                }
                categorySets[node] = Array(categories[segment..<(segment + size)])
            }
        }
        // Splits and leaves as the layout takes them: split i, or ~leaf.
        var local = [Int](repeating: 0, count: count)
        var splitCount = 0
        var leafValues: [Double] = []
        for node in 0..<count {
            if left[node] == -1 {
                guard conditions[node].isFinite else {
                    throw fail("tree \(number): leaf \(node) holds \(conditions[node]); every leaf must be a finite number (the rows that reach it would fail)")
                }
                local[node] = ~leafValues.count
                leafValues.append(Double(conditions[node]))
            } else {
                local[node] = splitCount
                splitCount += 1
            }
        }
        // The sum of hessians at each node, which TreeSHAP weighs by: a file without them serves, and cannot explain.
        let hessians = (tree["sum_hessian"] as? [NSNumber]).flatMap { $0.count == count ? $0.map(\.floatValue) : nil }
        var leafCovers: [Double]?
        if let hessians { leafCovers = (0..<count).filter { left[$0] == -1 }.map { Double(hessians[$0]) } }
        var splits: [TreeLanes.Split] = []
        for node in 0..<count where left[node] != -1 {
            guard (0..<count).contains(left[node]), (0..<count).contains(right[node]) else {
                throw fail("tree \(number): node \(node) has a child out of range")
            }
            guard (0..<featureCount).contains(indices[node]) else {
                throw fail("tree \(number): node \(node) splits on feature \(indices[node]) of \(featureCount)")
            }
            guard node < types.count && types[node] == 1 || !conditions[node].isNaN else { throw fail("tree \(number): node \(node) splits at nan") }
            var split = TreeLanes.Split(
                feature: indices[node], threshold: Double(conditions[node]), left: local[left[node]], right: local[right[node]], nanLeft: defaults[node] != 0,
                cover: hessians.map { Double($0[node]) } ?? 1)
            if node < types.count, types[node] == 1 {
                guard let members = categorySets[node] else { throw fail("tree \(number): categorical node \(node) has no categories") }
                let largest = members.max() ?? 0
                guard members.allSatisfy({ $0 >= 0 }), largest < TreeModelLimits.category else {
                    throw fail("tree \(number): node \(node) has a category out of range (0 to \(TreeModelLimits.category - 1))")
                }
                guard self.categories.bits.count <= TreeModelLimits.categoryWords - (largest / 32 + 1) else { throw fail(CategorySets.tooLarge) }
                var words = [UInt32](repeating: 0, count: largest / 32 + 1)
                for category in members { words[category >> 5] |= 1 << UInt32(category & 31) }
                split.special = 0  // the only kind: categorical
                split.threshold = Double(categories.add(words: words))
            }
            splits.append(split)
        }
        // Node 0 is the root: when it is a split, it is split 0.
        guard left[0] == -1 ? count == 1 : local[0] == 0, lanes.add(splits: splits, leaves: leafValues, leafCovers: leafCovers) != nil else {
            throw fail("tree \(number): left_children and right_children do not make a tree")
        }
    }

    /// The margins of one row: one per class (one for a binary or a regression model), each tree's leaf added in
    /// `Float`, in the trees' order, to its class's base margin. The values are compared as `Float`, as XGBoost
    /// reads them.
    func raw(_ features: [Double]) -> [Float] {
        lanes.score(features.map { Double(Float($0)) }, special: categorical) { leaves in
            var scores = base
            for tree in 0..<lanes.treeCount { scores[Int(groups[tree])] += Float(leaves[tree]) }
            return scores
        }
    }

    /// XGBoost's `GetNextNode` at a categorical split (true: left): missing → the default child; `common::Decision`:
    /// a category in the split's set goes right, any other (negative, too large, or outside the set) left.
    func categorical(_ split: TreeLanes.Special, _ value: Double) -> Bool {
        if value.isNaN { return split.nanLeft }
        guard value >= 0, value < 16_777_216 else { return true }
        return !categories.contains(Int(split.number), Int(value))
    }

    /// Whole numbers from JSON numbers, or nil when one is not (a fraction, NaN, or beyond 2^53, where a `Double`
    /// stops counting by one): `NSNumber.intValue` would wrap or trap on such a value.
    static func wholeNumbers(_ numbers: [NSNumber]) -> [Int]? {
        var values: [Int] = []
        values.reserveCapacity(numbers.count)
        for number in numbers {
            let value = number.doubleValue
            guard value.magnitude <= 9_007_199_254_740_992, let whole = Int(exactly: value) else { return nil }
            values.append(whole)
        }
        return values
    }
}
