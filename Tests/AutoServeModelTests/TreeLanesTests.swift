import Foundation
import Testing

@testable import AutoServeModel

/// The tree layout (``TreeLanes``) against a plain walk of the same trees, on random forests: trees of every shape
/// (a single leaf, a chain, bushy ones), thresholds shared between splits, tied with the rows' values, clustered and
/// far apart, missing values going either way, and special splits; for LightGBM's comparison and XGBoost's.
struct TreeLanesTests {
    /// A reproducible generator (SplitMix64).
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// One tree as the library's file gives it.
    struct Tree {
        var splits: [TreeLanes.Split] = []
        var leaves: [Double] = []
    }

    /// A special split's decision in these tests: left when the value's integer part is even (a missing value takes
    /// the split's default).
    static func special(_ split: TreeLanes.Special, _ value: Double) -> Bool {
        value.isNaN ? split.nanLeft : value.rounded(.down).truncatingRemainder(dividingBy: 2) == 0
    }

    /// The leaf a row reaches in `tree`, split by split.
    static func leaf(_ tree: Tree, _ row: [Double], strict: Bool) -> Double {
        guard !tree.splits.isEmpty else { return tree.leaves[0] }
        var node = 0
        while true {
            let split = tree.splits[node]
            let value = row[split.feature]
            let left =
                split.special != nil
                ? special(TreeLanes.Special(feature: split.feature, number: split.threshold, nanLeft: split.nanLeft, kind: split.special!), value)
                : value.isNaN ? split.nanLeft : strict ? value < split.threshold : value <= split.threshold
            let child = left ? split.left : split.right
            if child < 0 { return tree.leaves[~child] }
            node = child
        }
    }

    /// A random tree of `count` splits: a leaf split again and again, so that shapes from a chain to a full tree
    /// come out.
    static func tree(splits count: Int, features: Int, thresholds: [Double], using random: inout Seeded) -> Tree {
        // Children: a split index, or -1 for a leaf not yet numbered.
        var children: [(left: Int, right: Int)] = []
        var open: [(split: Int, right: Bool)] = []
        var tree = Tree()
        for index in 0..<count {
            if index > 0 {
                let (parent, right) = open.remove(at: Int.random(in: 0..<open.count, using: &random))
                if right { children[parent].right = index } else { children[parent].left = index }
            }
            children.append((-1, -1))
            open += [(index, false), (index, true)]
            let special: UInt8? = Int.random(in: 0..<8, using: &random) == 0 ? 0 : nil
            tree.splits.append(
                TreeLanes.Split(
                    feature: Int.random(in: 0..<features, using: &random), threshold: thresholds.randomElement(using: &random)!, left: 0, right: 0,
                    nanLeft: Bool.random(using: &random), special: special))
        }
        // Number the leaves in a shuffled order, as files do not promise any.
        let leafCount = max(count + 1, 1)
        var numbers = Array(0..<leafCount)
        numbers.shuffle(using: &random)
        var next = 0
        for index in 0..<count {
            var (left, right) = children[index]
            if left < 0 {
                left = ~numbers[next]
                next += 1
            }
            if right < 0 {
                right = ~numbers[next]
                next += 1
            }
            tree.splits[index].left = left
            tree.splits[index].right = right
        }
        tree.leaves = (0..<leafCount).map { _ in Double.random(in: -1...1, using: &random) }
        return tree
    }

    @Test(arguments: [false, true])
    func everyTreeReachesTheLeafOfAPlainWalk(strict: Bool) throws {
        var random = Seeded(state: strict ? 17 : 29)
        for forest in 0..<300 {
            let features = Int.random(in: 1...6, using: &random)
            // Thresholds that rows hit exactly, a cluster closer than a grid's cells, and values far apart.
            var thresholds: [Double] = [-2, -1, -0.5, -0.0, 0, 0.5, 1, 2, 3.25]
            if forest % 3 == 0 { thresholds += (0..<40).map { 1 + Double($0) * 1e-12 } }
            // A subnormal threshold (about 4e-320) among the very large ones.
            if forest % 5 == 0 { thresholds += [-1e300, 1e300, Double(bitPattern: 8096)] }
            thresholds += (0..<Int.random(in: 0...30, using: &random)).map { _ in Double.random(in: -5...5, using: &random) }
            let trees = (0..<Int.random(in: 1...40, using: &random)).map { _ in
                // A fifth of the trees are a single leaf; some are deep.
                let splits = [0, 1, 2, 7, 30, 100].randomElement(using: &random)!
                return Self.tree(splits: Int.random(in: 0...splits, using: &random), features: features, thresholds: thresholds, using: &random)
            }
            var lanes = TreeLanes(features: features, strict: strict)
            for tree in trees { #expect(lanes.add(splits: tree.splits, leaves: tree.leaves) != nil) }
            try lanes.finish()
            #expect(lanes.treeCount == trees.count)
            for _ in 0..<40 {
                let row = (0..<features).map { _ in
                    switch Int.random(in: 0..<4, using: &random) {
                    case 0: Double.nan
                    case 1: thresholds.randomElement(using: &random)!
                    case 2: Double.random(in: -6...6, using: &random)
                    default: [-1e308, 1e308, -0.0, Double.leastNonzeroMagnitude].randomElement(using: &random)!
                    }
                }
                let expected = trees.map { Self.leaf($0, row, strict: strict) }
                let reached = lanes.score(row, special: Self.special) { leaves in (0..<trees.count).map { leaves[$0] } }
                let wrong = expected.indices.first { reached[$0] != expected[$0] }
                #expect(wrong == nil, "forest \(forest), row \(row): tree \(wrong ?? 0) reached \(reached[wrong ?? 0]), not \(expected[wrong ?? 0])")
            }
        }
    }

    @Test func treesThatAreNotTreesAreRefused() {
        var lanes = TreeLanes(features: 2, strict: false)
        // A child that points back to the root, a leaf reached twice, a leaf never reached, a feature out of range.
        #expect(lanes.add(splits: [.init(feature: 0, threshold: 1, left: 0, right: ~0, nanLeft: true)], leaves: [1, 2]) == nil)
        #expect(lanes.add(splits: [.init(feature: 0, threshold: 1, left: ~0, right: ~0, nanLeft: true)], leaves: [1, 2]) == nil)
        #expect(lanes.add(splits: [.init(feature: 0, threshold: 1, left: ~0, right: ~1, nanLeft: true)], leaves: [1, 2, 3]) == nil)
        #expect(lanes.add(splits: [.init(feature: 2, threshold: 1, left: ~0, right: ~1, nanLeft: true)], leaves: [1, 2]) == nil)
        #expect(lanes.add(splits: [.init(feature: 0, threshold: .nan, left: ~0, right: ~1, nanLeft: true)], leaves: [1, 2]) == nil)
        #expect(lanes.add(splits: [], leaves: [1, 2]) == nil)
        #expect(lanes.add(splits: [], leaves: [1]) != nil)
    }
}
