/// A forest's trees laid out for scoring one row fast, with the library's exact decisions.
///
/// - **Bins.** For each feature, the thresholds its splits compare with are sorted once; a row's value becomes its
///   bin (how many thresholds lie below it), found by one binary search per feature. `value <= threshold` (LightGBM)
///   or `value < threshold` (XGBoost) is then exactly `bin < bound` for an integer bound (at least 1) per split. Each
///   feature has two slots of bins, which differ only for a missing value: the largest bin in the first (it goes
///   right everywhere), 0 in the second (it goes left everywhere); a split reads the slot of its default direction,
///   so the walk never tests for missing values.
/// - **Layout.** Each tree in depth-first order (a split's left child is the next node); a leaf is a node whose
///   children are itself.
/// - **Lanes.** Eight trees are walked side by side in lockstep, with selects instead of branches, so that the
///   processor overlaps them; a tree that reached its leaf stays there while the others of its group finish, and
///   trees are grouped by depth so that few steps are wasted. The leaves are added afterwards in the trees' own
///   order: the sums are the library's to the last bit.
///
/// Splits that need more than a comparison (a categorical split, LightGBM's zero-as-missing) are special: the forest
/// decides each of them for the row before the walk (from the row's value and the split's ``Special``), and each
/// reads its decision as the bin of a feature of its own, so that the walk itself has no branch.
struct TreeLanes: Sendable {
    struct Node: Sendable {
        /// The slot of bins the split reads: its feature's (`feature` or `features + feature`, by where a missing
        /// value goes), or for a special split its own, after those.
        var slot: UInt32
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
        /// For a special split, the forest's own kind of it; `nil` for a comparison.
        var special: UInt8? = nil
    }

    /// A split the forest decides before the walk: what it reads, its number (a threshold, a category set), where a
    /// missing value goes and the forest's kind of it.
    struct Special: Sendable {
        var feature: Int
        var number: Double
        var nanLeft: Bool
        var kind: UInt8
    }

    static let width = 8
    static let missing = UInt16.max

    var nodes: [Node] = []
    /// Per node: a leaf's value, or a special split's number.
    var values: [Double] = []
    /// Per tree: its root, and the steps to its deepest leaf.
    var roots: [Int32] = []
    var depths: [Int] = []
    /// Per feature: the sorted distinct thresholds of its splits.
    var thresholds: [[Double]] = []
    /// The special splits, in the order of their slots.
    var specials: [Special] = []
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

    /// Adds one tree; nil unless its splits and leaves make a tree (every node reached once, from split 0).
    mutating func add(splits: [Split], leaves: [Double]) -> Void? {
        let count = splits.count + leaves.count
        guard count < Int(Int32.max) - nodes.count, splits.allSatisfy({ $0.feature >= 0 && $0.feature < thresholds.count }) else { return nil }
        // Local index: splits first, then leaves.
        func local(_ child: Int) -> Int? {
            if child >= 0 { return child < splits.count ? child : nil }
            return ~child < leaves.count ? splits.count + ~child : nil
        }
        var seen = [Bool](repeating: false, count: count)
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
                nodes.append(Node(slot: 0, bound: 0, left: index, right: index))
                values.append(leaves[node - splits.count])
                deepest = max(deepest, depth)
                continue
            }
            let split = splits[node]
            guard let left = local(split.left), let right = local(split.right) else { return nil }
            var slot = UInt32(split.nanLeft ? thresholds.count + split.feature : split.feature)
            if let kind = split.special {
                // Its own slot, whose bin (0 or 1) is its decision: left below bound 1.
                slot = UInt32(2 * thresholds.count + specials.count)
                specials.append(Special(feature: split.feature, number: split.threshold, nanLeft: split.nanLeft, kind: kind))
            }
            nodes.append(Node(slot: slot, bound: split.special == nil ? 0 : 1, left: index + 1, right: -1))
            values.append(split.threshold)
            stack.append((right, depth + 1, Int(index)))
            stack.append((left, depth + 1, nil))
        }
        guard seen.allSatisfy({ $0 }) else { return nil }
        roots.append(root)
        depths.append(deepest)
        return ()
    }

    /// Sorts each feature's thresholds, turns them into bounds and groups the trees; nil when a feature has more
    /// distinct thresholds than a bin can count (65,534).
    mutating func finish() -> Void? {
        let features = thresholds.count
        func feature(_ node: Node) -> Int? { Int(node.slot) < 2 * features ? Int(node.slot) % max(features, 1) : nil }
        var perFeature = Array(repeating: Set<Double>(), count: features)
        for (index, node) in nodes.enumerated() where node.right != Int32(index) {
            if let feature = feature(node) { perFeature[feature].insert(values[index]) }
        }
        thresholds = perFeature.map { $0.sorted() }
        guard thresholds.allSatisfy({ $0.count < Int(Self.missing) }) else { return nil }
        let positions = thresholds.map { Dictionary(uniqueKeysWithValues: $0.enumerated().map { ($1, $0) }) }
        for index in nodes.indices where nodes[index].right != Int32(index) {
            if let feature = feature(nodes[index]) { nodes[index].bound = UInt16(positions[feature][values[index]]! + 1) }
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
    /// XGBoost), in both of its slots; for a missing value (NaN), `missing` in the first and 0 in the second.
    func bins(_ features: UnsafeBufferPointer<Double>, into bins: UnsafeMutableBufferPointer<UInt16>) {
        let count = thresholds.count
        for feature in thresholds.indices {
            let value = features[feature]
            guard !value.isNaN else {
                bins[feature] = Self.missing
                bins[count + feature] = 0
                continue
            }
            thresholds[feature].withUnsafeBufferPointer { sorted in
                // A binary search whose steps are selects, not branches: the count of thresholds below the value.
                var low = 0
                var length = sorted.count
                while length > 1 {
                    let half = length >> 1
                    let below = strict ? sorted[low + half] <= value : sorted[low + half] < value
                    low = below ? low + half : low
                    length -= half
                }
                if length == 1 && (strict ? sorted[low] <= value : sorted[low] < value) { low += 1 }
                bins[feature] = UInt16(low)
                bins[count + feature] = UInt16(low)
            }
        }
    }

    /// Walks every tree to its leaf and calls `leaf(tree, value)` in the trees' order. `special(split, value)` decides
    /// a special split (true: left) from the row's value of its feature.
    @inline(__always)
    func score(_ features: [Double], special: (Special, Double) -> Bool, leaf: (Int, Double) -> Void) {
        let treeCount = roots.count
        features.withUnsafeBufferPointer { features in
            withUnsafeTemporaryAllocation(of: UInt16.self, capacity: 2 * thresholds.count + specials.count + 1) { bins in
                self.bins(features, into: bins)
                for (slot, split) in specials.enumerated() {
                    bins[2 * thresholds.count + slot] = special(split, features[split.feature]) ? 0 : 1
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
                            // 0 for left, 1 for right; the child is then loaded from its offset, not chosen by a
                            // branch the processor would have to predict.
                            let right = bins[Int(node.slot)] < node.bound ? 0 : 1
                            return address.load(fromByteOffset: leftOffset &+ right &* distance, as: Int32.self)
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

/// Sets of categories as bitsets, one after the other: set `c` is `bits[bounds[c] ..< bounds[c + 1]]`.
struct CategorySets: Sendable {
    var bounds: [Int32] = [0]
    var bits: [UInt32] = []

    var count: Int { bounds.count - 1 }

    /// Adds a set given as its bitset's words; returns its number.
    mutating func add(words: some Collection<UInt32>) -> Int {
        bits += words
        bounds.append(Int32(bits.count))
        return count - 1
    }

    /// Whether set `set` holds `category` (a category past the set's last word is not in it).
    func contains(_ set: Int, _ category: Int) -> Bool {
        let first = Int(bounds[set])
        let word = category >> 5
        guard word < Int(bounds[set + 1]) - first else { return false }
        return (bits[first + word] >> UInt32(category & 31)) & 1 != 0
    }
}
