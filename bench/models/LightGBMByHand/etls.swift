import AutoServeModel
import Foundation

/// The LightGBM model of `bench/trees.py` (500 trees of 63 leaves on features v0...v19) ported to Swift by hand, as
/// a user without models as data would port it: the trees of `Booster.dump_model()` (trees.json, written by the
/// bench) flattened into arrays once, and each row walked tree by tree, node by node. The bench compares its route
/// with the same model served from its model.txt.
struct LightGBMByHand {
    struct Variables: Decodable {
        var v0, v1, v2, v3, v4, v5, v6, v7, v8, v9: Double?
        var v10, v11, v12, v13, v14, v15, v16, v17, v18, v19: Double?

        /// The features in the model's order; a missing one is NaN.
        var row: [Double] {
            [v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15, v16, v17, v18, v19].map { $0 ?? .nan }
        }
    }

    /// A node of the dump: a split, or a leaf with its value.
    final class Node: Decodable {
        let split_feature: Int?
        let threshold: Double?
        let default_left: Bool?
        let missing_type: String?
        let left_child: Node?
        let right_child: Node?
        let leaf_value: Double?
    }

    struct Dump: Decodable {
        struct Tree: Decodable { let tree_structure: Node }
        let tree_info: [Tree]
    }

    /// Per split: its feature, threshold, children (a split's index, or `~leaf`), where a missing value goes and
    /// whether a missing value counts as 0 (LightGBM's missing type None).
    var features: [Int] = []
    var thresholds: [Double] = []
    var lefts: [Int] = []
    var rights: [Int] = []
    var defaultLefts: [Bool] = []
    var missingAsZero: [Bool] = []
    var leaves: [Double] = []
    var roots: [Int] = []

    init(path: String) throws {
        let dump = try JSONDecoder().decode(Dump.self, from: Data(contentsOf: URL(fileURLWithPath: path + "/trees.json")))
        for tree in dump.tree_info { roots.append(add(tree.tree_structure)) }
    }

    /// Adds a node and those below it; its index, or `~leaf`.
    mutating func add(_ node: Node) -> Int {
        guard let feature = node.split_feature, let left = node.left_child, let right = node.right_child else {
            leaves.append(node.leaf_value ?? 0)
            return ~(leaves.count - 1)
        }
        let index = features.count
        features.append(feature)
        thresholds.append(node.threshold ?? 0)
        defaultLefts.append(node.default_left ?? true)
        missingAsZero.append(node.missing_type == "None")
        lefts.append(0)
        rights.append(0)
        lefts[index] = add(left)
        rights[index] = add(right)
        return index
    }

    func transform_predict(_ variables: Variables) throws -> [String: JSON] {
        let row = variables.row
        var total = 0.0
        for root in roots {
            var node = root
            while node >= 0 {
                var value = row[features[node]]
                let left: Bool
                if value.isNaN && !missingAsZero[node] {
                    left = defaultLefts[node]
                } else {
                    if value.isNaN { value = 0 }
                    left = value <= thresholds[node]
                }
                node = left ? lefts[node] : rights[node]
            }
            total += leaves[~node]
        }
        return ["probability": .number(1 / (1 + exp(-total)))]
    }
}
