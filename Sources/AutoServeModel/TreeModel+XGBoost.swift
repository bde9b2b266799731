import Foundation

/// The trees of an XGBoost JSON model (`Booster.save_model("model.json")`, a `gbtree` booster), flattened and scored
/// as XGBoost's CPU predictor does: features as `Float`, `value < split_condition` goes left, a missing value takes
/// the node's default direction, and each tree's leaf is added in `Float` to its class's score, which starts at the
/// base score's margin.
struct XGBoostForest: Sendable {
    var lanes = TreeLanes(features: 0, strict: true)
    /// The category sets of the categorical splits (the categories that go right).
    var categories = CategorySets()
    /// The class each tree adds to.
    var groups: [Int32] = []
    /// The starting score of each class, as a margin.
    var base: [Float] = []
    var task: TreeModel.Task = .regression(.identity)
    var features: [TreeModel.Feature] = []

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
            let treeInfo = model["tree_info"] as? [NSNumber]
        else { throw fail("gradient_booster.model has no trees") }
        let featureCount = Int(parameters["num_feature"] as? String ?? "") ?? 0
        let classCount = max(Int(parameters["num_class"] as? String ?? "") ?? 0, 1)
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
        guard trees.count == treeInfo.count else { throw fail("tree_info has \(treeInfo.count) entries for \(trees.count) trees") }
        // Features: names, types and the training categories (XGBoost 3 keeps them in the model).
        let names = learner["feature_names"] as? [String] ?? []
        let types = learner["feature_types"] as? [String] ?? []
        let count = max(featureCount, names.count)
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
                if let offsets = (encoding["offsets"] as? [NSNumber])?.map(\.intValue), !offsets.isEmpty {
                    let bytes = values.map(\.uint8Value)
                    for (start, end) in zip(offsets, offsets.dropFirst()) {
                        guard start <= end, end <= bytes.count else { throw fail("cats.enc of feature \(index) has offsets outside its values") }
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
            let group = treeInfo[index].intValue
            guard (0..<classes).contains(group) else { throw fail("tree \(index) adds to class \(group) of \(classes)") }
            try addTree(tree, number: index, featureCount: count, fail: fail)
            groups.append(Int32(group))
        }
        do { try lanes.finish() } catch { throw fail(error.message) }
    }

    // Reading the file runs once per version: left unoptimized, it makes the model SDK (compiled at a server's first
    // start) seconds quicker to build, for a few tens of ms more load time.
    @_optimize(none)
    mutating func addTree(_ tree: [String: Any], number: Int, featureCount: Int, fail: (String) -> TreeModelError) throws {
        func array(_ key: String) throws -> [NSNumber] {
            guard let values = tree[key] as? [NSNumber] else { throw fail("tree \(number) has no \(key)") }
            return values
        }
        if let parameters = tree["tree_param"] as? [String: Any], let size = Int(parameters["size_leaf_vector"] as? String ?? "1"), size > 1 {
            throw fail("tree \(number) has vector leaves (multi_strategy=\"multi_output_tree\"), which are not supported")
        }
        let left = try array("left_children").map(\.intValue)
        let right = try array("right_children").map(\.intValue)
        let conditions = try array("split_conditions").map(\.floatValue)
        let indices = try array("split_indices").map(\.intValue)
        let defaults = try array("default_left").map(\.intValue)
        let count = left.count
        guard count > 0, [right.count, conditions.count, indices.count, defaults.count].allSatisfy({ $0 == count }) else {
            throw fail("tree \(number): its node arrays differ in length")
        }
        let types = (tree["split_type"] as? [NSNumber])?.map(\.intValue) ?? []
        // Categorical splits: node → the categories that go right.
        var categorySets: [Int: [Int]] = [:]
        if types.contains(1) {
            let categoryNodes = try array("categories_nodes").map(\.intValue)
            let segments = try array("categories_segments").map(\.intValue)
            let sizes = try array("categories_sizes").map(\.intValue)
            let categories = try array("categories").map(\.intValue)
            guard categoryNodes.count == segments.count, segments.count == sizes.count else {
                throw fail("tree \(number): its category arrays differ in length")
            }
            for (node, (segment, size)) in zip(categoryNodes, zip(segments, sizes)) {
                guard segment >= 0, size >= 0, segment + size <= categories.count else { throw fail("tree \(number): a category segment is out of range") }
                categorySets[node] = Array(categories[segment..<(segment + size)])
            }
        }
        // Splits and leaves as the layout takes them: split i, or ~leaf.
        var local = [Int](repeating: 0, count: count)
        var splitCount = 0
        var leafValues: [Double] = []
        for node in 0..<count {
            if left[node] == -1 {
                local[node] = ~leafValues.count
                leafValues.append(Double(conditions[node]))
            } else {
                local[node] = splitCount
                splitCount += 1
            }
        }
        var splits: [TreeLanes.Split] = []
        for node in 0..<count where left[node] != -1 {
            guard (0..<count).contains(left[node]), (0..<count).contains(right[node]) else {
                throw fail("tree \(number): node \(node) has a child out of range")
            }
            guard (0..<featureCount).contains(indices[node]) else {
                throw fail("tree \(number): node \(node) splits on feature \(indices[node]) of \(featureCount)")
            }
            var split = TreeLanes.Split(
                feature: indices[node], threshold: Double(conditions[node]), left: local[left[node]], right: local[right[node]], nanLeft: defaults[node] != 0)
            if node < types.count, types[node] == 1 {
                guard let members = categorySets[node] else { throw fail("tree \(number): categorical node \(node) has no categories") }
                let largest = members.max() ?? 0
                guard members.allSatisfy({ $0 >= 0 }), largest < 1 << 24 else { throw fail("tree \(number): node \(node) has a category out of range") }
                var words = [UInt32](repeating: 0, count: largest / 32 + 1)
                for category in members { words[category >> 5] |= 1 << UInt32(category & 31) }
                split.special = 0  // the only kind: categorical
                split.threshold = Double(categories.add(words: words))
            }
            splits.append(split)
        }
        // Node 0 is the root: when it is a split, it is split 0.
        guard left[0] == -1 ? count == 1 : local[0] == 0, lanes.add(splits: splits, leaves: leafValues) != nil else {
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
}
