/// A forest's trees laid out for scoring one row fast, with the library's exact decisions.
///
/// - **Bins.** For each feature, the thresholds its splits compare with are sorted once; a row's value becomes its
///   bin (how many thresholds lie below it), found by one binary search per feature. `value <= threshold` (LightGBM)
///   or `value < threshold` (XGBoost) is then exactly `bin < bound` for an integer bound per split, and a node fits
///   in 16 bytes.
/// - **Layout.** Each tree in depth-first order (a split's left child is the next node); a leaf is a node whose
///   children are itself.
/// - **Lanes.** Eight trees are walked side by side in lockstep, with selects instead of branches, so that the
///   processor overlaps them; a tree that reached its leaf stays there while the others of its group finish, and
///   trees are grouped by depth so that few steps are wasted. The leaves are added afterwards in the trees' own
///   order: the sums are the library's to the last bit.
///
/// Splits that need more than a comparison (a categorical split, LightGBM's zero-as-missing) are special: the forest
/// decides each of them for the row before the walk (from the row's value and the split's own number, `values`),
/// and each reads its decision as the bin of a feature of its own, so that the walk itself has no branch.
struct TreeLanes: Sendable {
    struct Node: Sendable {
        /// The feature (for a special split, its own slot after the features), with the `nanLeft` bit.
        var feature: UInt32
        /// Left when the value's bin is below this; 0 for a leaf.
        var bound: UInt16
        /// The children (a leaf's are itself), side by side: the walk loads the one it takes by its offset.
        var left: Int32
        var right: Int32

        static let leftOffset = MemoryLayout<Node>.offset(of: \Node.left)!
        static let rightOffset = MemoryLayout<Node>.offset(of: \Node.right)!
    }

    /// One split of a tree as the library's file gives it, before the layout. `left` and `right` are split indices,
    /// or `~leaf`.
    struct Split {
        var feature: Int
        /// The threshold; for a special split, the number the forest decides it with.
        var threshold: Double
        var left: Int
        var right: Int
        /// Where a missing value (NaN) goes.
        var nanLeft: Bool
        var special = false
    }

    static let width = 8
    static let nanLeftBit: UInt32 = 0x8000_0000
    static let featureMask: UInt32 = 0x7FFF_FFFF
    static let missing = UInt16.max

    var nodes: [Node] = []
    /// Per node: a leaf's value, or a special split's number.
    var values: [Double] = []
    /// Per tree: its root, and the steps to its deepest leaf.
    var roots: [Int32] = []
    var depths: [Int] = []
    /// Per feature: the sorted distinct thresholds of its splits.
    var thresholds: [[Double]] = []
    /// Per special split: its node and the feature it reads.
    var specialNodes: [Int32] = []
    var specialFeatures: [Int32] = []
    /// XGBoost's `value < threshold` rather than LightGBM's `value <= threshold`.
    var strict = false
    /// Per lane slot (a multiple of `width`): the tree, and its root. Padding slots repeat the group's first tree.
    var slotTrees: [Int32] = []
    var slotRoots: [Int32] = []
    /// Per group of `width` slots: the steps that take its deepest tree to a leaf.
    var steps: [Int32] = []

    init(features: Int, strict: Bool) {
        thresholds = Array(repeating: [], count: features)
        self.strict = strict
    }

    /// Adds one tree and returns the node of each split; nil unless its splits and leaves make a tree (every node
    /// reached once, from split 0).
    mutating func add(splits: [Split], leaves: [Double]) -> [Int32]? {
        let count = splits.count + leaves.count
        guard count < Int(Int32.max) - nodes.count, splits.allSatisfy({ $0.feature >= 0 && $0.feature < thresholds.count }) else { return nil }
        // Local index: splits first, then leaves.
        func local(_ child: Int) -> Int? {
            if child >= 0 { return child < splits.count ? child : nil }
            return ~child < leaves.count ? splits.count + ~child : nil
        }
        var seen = [Bool](repeating: false, count: count)
        var placed = [Int32](repeating: 0, count: splits.count)
        var deepest = 0
        let root = Int32(nodes.count)
        // Depth-first: a split's left child is laid out right after it; its right child is patched in when reached.
        var stack: [(node: Int, depth: Int, parent: Int?)] = [(0, 0, nil)]
        while let (node, depth, parent) = stack.popLast() {
            guard node < count, !seen[node] else { return nil }
            seen[node] = true
            let index = Int32(nodes.count)
            if let parent { nodes[parent].right = index }
            if node >= splits.count {
                nodes.append(Node(feature: 0, bound: 0, left: index, right: index))
                values.append(leaves[node - splits.count])
                deepest = max(deepest, depth)
                continue
            }
            let split = splits[node]
            guard let left = local(split.left), let right = local(split.right) else { return nil }
            var feature = UInt32(split.feature)
            if split.special {
                // Its own slot, whose bin (0 or 1) is its decision: left below bound 1.
                feature = UInt32(thresholds.count + specialNodes.count)
                specialNodes.append(index)
                specialFeatures.append(Int32(split.feature))
            }
            if split.nanLeft { feature |= Self.nanLeftBit }
            placed[node] = index
            nodes.append(Node(feature: feature, bound: split.special ? 1 : 0, left: index + 1, right: -1))
            values.append(split.threshold)
            stack.append((right, depth + 1, Int(index)))
            stack.append((left, depth + 1, nil))
        }
        guard seen.allSatisfy({ $0 }) else { return nil }
        roots.append(root)
        depths.append(deepest)
        return placed
    }

    /// Sorts each feature's thresholds, turns them into bounds and groups the trees; nil when a feature has more
    /// distinct thresholds than a bin can count (65,534).
    mutating func finish() -> Void? {
        var perFeature = Array(repeating: Set<Double>(), count: thresholds.count)
        for (index, node) in nodes.enumerated() where node.right != Int32(index) && Int(node.feature & Self.featureMask) < perFeature.count {
            perFeature[Int(node.feature & Self.featureMask)].insert(values[index])
        }
        thresholds = perFeature.map { $0.sorted() }
        guard thresholds.allSatisfy({ $0.count < Int(Self.missing) }) else { return nil }
        let positions = thresholds.map { Dictionary(uniqueKeysWithValues: $0.enumerated().map { ($1, $0) }) }
        for index in nodes.indices where nodes[index].right != Int32(index) && Int(nodes[index].feature & Self.featureMask) < thresholds.count {
            let feature = Int(nodes[index].feature & Self.featureMask)
            nodes[index].bound = UInt16(positions[feature][values[index]]! + 1)
        }
        let order = roots.indices.sorted { (depths[$0], $0) < (depths[$1], $1) }
        var start = 0
        while start < order.count {
            let group = order[start..<min(start + Self.width, order.count)]
            for slot in 0..<Self.width {
                let tree = slot < group.count ? group[group.startIndex + slot] : group[group.startIndex]
                slotTrees.append(Int32(tree))
                slotRoots.append(roots[tree])
            }
            steps.append(Int32(group.map { depths[$0] }.max() ?? 0))
            start += Self.width
        }
        return ()
    }

    /// A row's bins: per feature, how many of its thresholds lie below the value (`<` for LightGBM, `<=` for
    /// XGBoost), or `missing` for NaN.
    func bins(_ features: UnsafeBufferPointer<Double>, into bins: UnsafeMutableBufferPointer<UInt16>) {
        for feature in thresholds.indices {
            let value = features[feature]
            guard !value.isNaN else {
                bins[feature] = Self.missing
                continue
            }
            thresholds[feature].withUnsafeBufferPointer { sorted in
                var low = 0
                var high = sorted.count
                while low < high {
                    let middle = (low + high) >> 1
                    if strict ? sorted[middle] <= value : sorted[middle] < value { low = middle + 1 } else { high = middle }
                }
                bins[feature] = UInt16(low)
            }
        }
    }

    /// Walks every tree to its leaf and calls `leaf(tree, value)` in the trees' order. `special(node, value)` decides
    /// a special split (true: left) from the row's value of its feature.
    @inline(__always)
    func score(_ features: [Double], special: (Int, Double) -> Bool, leaf: (Int, Double) -> Void) {
        let treeCount = roots.count
        features.withUnsafeBufferPointer { features in
            withUnsafeTemporaryAllocation(of: UInt16.self, capacity: thresholds.count + specialNodes.count + 1) { bins in
                self.bins(features, into: bins)
                for (slot, node) in specialNodes.enumerated() {
                    bins[thresholds.count + slot] = special(Int(node), features[Int(specialFeatures[slot])]) ? 0 : 1
                }
                withUnsafeTemporaryAllocation(of: Int32.self, capacity: treeCount) { leaves in
                    nodes.withUnsafeBytes { raw in
                        let base = raw.baseAddress!
                        let stride = MemoryLayout<Node>.stride
                        let (leftOffset, distance) = (Node.leftOffset, Node.rightOffset - Node.leftOffset)
                        @inline(__always)
                        func step(_ index: Int32) -> Int32 {
                            let address = base + Int(index) &* stride
                            let node = address.load(as: Node.self)
                            let bin = bins[Int(node.feature & Self.featureMask)]
                            // 1 for left, 0 for right; the child is then loaded from its offset, not chosen by a
                            // branch the processor would have to predict.
                            let left = bin == Self.missing ? Int(node.feature >> 31) : (bin < node.bound ? 1 : 0)
                            return address.load(fromByteOffset: leftOffset &+ (1 &- left) &* distance, as: Int32.self)
                        }
                        walk(into: leaves, step)
                    }
                    values.withUnsafeBufferPointer { values in
                        for tree in 0..<treeCount { leaf(tree, values[Int(leaves[tree])]) }
                    }
                }
            }
        }
    }

    @inline(__always)
    func walk(into leaves: UnsafeMutableBufferPointer<Int32>, _ step: (Int32) -> Int32) {
        slotTrees.withUnsafeBufferPointer { trees in
            slotRoots.withUnsafeBufferPointer { roots in
                var slot = 0
                for count in steps {
                    var n0 = roots[slot]
                    var n1 = roots[slot + 1]
                    var n2 = roots[slot + 2]
                    var n3 = roots[slot + 3]
                    var n4 = roots[slot + 4]
                    var n5 = roots[slot + 5]
                    var n6 = roots[slot + 6]
                    var n7 = roots[slot + 7]
                    var remaining = count
                    while remaining > 0 {
                        n0 = step(n0)
                        n1 = step(n1)
                        n2 = step(n2)
                        n3 = step(n3)
                        n4 = step(n4)
                        n5 = step(n5)
                        n6 = step(n6)
                        n7 = step(n7)
                        remaining &-= 1
                    }
                    // Padding slots repeat the group's first tree, which reaches the same leaf.
                    leaves[Int(trees[slot + 7])] = n7
                    leaves[Int(trees[slot + 6])] = n6
                    leaves[Int(trees[slot + 5])] = n5
                    leaves[Int(trees[slot + 4])] = n4
                    leaves[Int(trees[slot + 3])] = n3
                    leaves[Int(trees[slot + 2])] = n2
                    leaves[Int(trees[slot + 1])] = n1
                    leaves[Int(trees[slot])] = n0
                    slot += Self.width
                }
            }
        }
    }
}
