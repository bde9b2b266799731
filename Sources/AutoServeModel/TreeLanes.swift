/// A forest's trees laid out for scoring one row fast, with the library's exact decisions.
///
/// - **Bins.** For each feature, the thresholds its splits compare with are sorted once; a row's value becomes its
///   bin (how many thresholds lie below it), found on a grid of the feature's thresholds (see ``Grid``).
///   `value <= threshold` (LightGBM) or `value < threshold` (XGBoost) is then exactly `bin < bound` for an integer
///   bound (at least 1) per split. Each feature has two slots of bins, which differ only for a missing value: the
///   largest bin in the first (it goes right everywhere), 0 in the second (it goes left everywhere); a split reads the
///   slot of its default direction, so the walk never tests for missing values.
/// - **Layout.** Only splits are nodes, 16 bytes each, named by their offset in bytes; each tree's nodes are laid out
///   breadth-first (its first levels share cache lines), and the leaves' values kept apart, by split and side.
/// - **Lanes.** The trees are dealt to ten lanes, which are walked side by side, one step of each in turn, so that
///   the processor overlaps their loads; a step has no branch: the child it takes is loaded from where its offset
///   is stored, and a child that is a leaf is stored as the next tree's root of its lane, so that a lane goes on to
///   its next tree without a test. After its last tree a lane idles on node 0, which leads to itself; the walk ends
///   when every lane idles. A step also writes where it went (its child's place) to its tree's entry, so that the
///   last write names the leaf. The leaves are added afterwards in the trees' own order: the sums are the library's
///   to the last bit.
///
/// Splits that need more than a comparison (a categorical split, LightGBM's zero-as-missing) are special: the forest
/// decides each of them for the row before the walk (from the row's value and the split's ``Special``), and each
/// reads its decision as the bin of a slot of its own, after the features', so that the walk itself has no branch.
struct TreeLanes: Sendable {
    struct Node: Sendable {
        /// The slot of bins the split reads: its feature's (`feature` or `features + feature`, by where a missing
        /// value goes), or for a special split its own, after those.
        var slot: UInt32 = 0
        /// Left when the bin is below this.
        var bound: UInt16 = 0
        /// The tree's place in its lane: the walk writes to entry `entry * width + lane`.
        var entry: UInt16 = 0
        /// The children side by side (the walk loads the one it takes by its offset): a split's offset in bytes, or
        /// for a leaf the lane's next root (0 after its last tree).
        var left: Int32 = 0
        var right: Int32 = 0

        // Literals, not MemoryLayout's answers, so that the walk uses them as constants (checked in finish()).
        static let stride = 16
        static let children = 8
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
        /// How much of the training data reached the split (LightGBM's count, XGBoost's sum of hessians): what
        /// TreeSHAP weighs its sides by.
        var cover = 1.0
    }

    /// A split the forest decides before the walk: what it reads, its number (a threshold, a category set), where a
    /// missing value goes and the forest's kind of it.
    struct Special: Sendable {
        var feature: Int
        var number: Double
        var nanLeft: Bool
        var kind: UInt8
    }

    /// A forest the layout cannot hold, and why.
    struct TooLarge: Error {
        var message: String
    }

    static let width = 10
    static let missing = UInt16.max

    /// The nodes; node 0 leads to itself (it reads slot 0, whatever it holds, and takes either child).
    var nodes: [Node] = [Node()]
    /// Per node and side (`2 * node + side`, 1 for right): the value of the leaf that is that child.
    var leafValues: [Double] = [0, 0]
    /// Per tree, in the trees' order: its entry, an index of the walk's entries.
    var entries: [Int32] = []
    /// Per lane: its first tree's root (0 for a lane without trees).
    var laneRoots = [Int32](repeating: 0, count: width)
    /// The entries a walk writes (per lane, one per tree and one for node 0), and those of the trees that are a
    /// single leaf.
    var entryCount = width
    /// The entries of the trees that are a single leaf, and what they hold (see ``finish()``).
    var constants: [(entry: Int32, place: Int32)] = []
    /// The number of features.
    var features = 0
    /// The sorted distinct thresholds of all features, one after the other.
    var thresholds: [Double] = []
    /// Per feature, its grid of thresholds, and the grids' cells one after the other.
    var grids: [Grid] = []
    var cells: [UInt16] = []
    /// The special splits, in the order of their slots.
    var specials: [Special] = []
    /// XGBoost's `value < threshold` rather than LightGBM's `value <= threshold`.
    var strict = false
    /// The trees as added, each in breadth-first order, and per feature the thresholds of its splits, until
    /// ``finish()`` lays them out.
    private var pending: [Tree] = []
    private var featureThresholds: [[Double]] = []

    /// A tree in breadth-first order: per split, its slot, its threshold (0 for a special split, whose bound is 1) and
    /// its children (a split's position in the tree, or `~leaf`); the leaves' values.
    private struct Tree {
        var slots: [UInt32] = []
        var thresholds: [Double] = []
        var children: [(left: Int, right: Int)] = []
        var leaves: [Double] = []
        var depth = 0
        /// Per split, its feature and cover; per leaf, its cover.
        var features: [Int32] = []
        var covers: [Double] = []
        var leafCovers: [Double] = []
    }

    var treeCount: Int { entries.count }
    /// The slots a row fills: two per feature, one per special split.
    var slotCount: Int { 2 * features + specials.count }

    init(features: Int, strict: Bool) {
        self.features = features
        self.strict = strict
        featureThresholds = Array(repeating: [], count: features)
    }

    /// Adds one tree; nil unless its splits and leaves make a tree (every node reached once, from split 0).
    /// `leafCovers` are the leaves' covers (see ``Split/cover``), when the file keeps them.
    mutating func add(splits: [Split], leaves: [Double], leafCovers: [Double]? = nil) -> Void? {
        guard splits.allSatisfy({ $0.feature >= 0 && $0.feature < features }), !leaves.isEmpty else { return nil }
        var tree = Tree(leaves: leaves)
        if let leafCovers, leafCovers.count == leaves.count { tree.leafCovers = leafCovers }
        guard !splits.isEmpty else {
            guard leaves.count == 1 else { return nil }
            pending.append(tree)
            return ()
        }
        var seenSplits = [Bool](repeating: false, count: splits.count)
        var seenLeaves = [Bool](repeating: false, count: leaves.count)
        // Breadth-first, left first: a split's position is known when it is reached, and its parent's child is
        // patched then.
        var queue: [(split: Int, depth: Int, parent: Int, right: Bool)] = [(0, 0, -1, false)]
        var next = 0
        while next < queue.count {
            let (split, depth, parent, isRight) = queue[next]
            next += 1
            guard split < splits.count, !seenSplits[split] else { return nil }
            seenSplits[split] = true
            let position = tree.slots.count
            if parent >= 0 {
                if isRight { tree.children[parent].right = position } else { tree.children[parent].left = position }
            }
            let node = splits[split]
            guard !node.threshold.isNaN else { return nil }
            if let kind = node.special {
                tree.slots.append(UInt32(2 * features + specials.count))
                tree.thresholds.append(0)
                specials.append(Special(feature: node.feature, number: node.threshold, nanLeft: node.nanLeft, kind: kind))
            } else {
                tree.slots.append(UInt32(node.nanLeft ? features + node.feature : node.feature))
                tree.thresholds.append(node.threshold)
                featureThresholds[node.feature].append(node.threshold)
            }
            tree.children.append((0, 0))
            tree.features.append(Int32(node.feature))
            tree.covers.append(node.cover)
            tree.depth = max(tree.depth, depth + 1)
            for (child, isRight) in [(node.left, false), (node.right, true)] {
                if child >= 0 {
                    queue.append((child, depth + 1, position, isRight))
                } else {
                    guard ~child < leaves.count, !seenLeaves[~child] else { return nil }
                    seenLeaves[~child] = true
                    if isRight { tree.children[position].right = child } else { tree.children[position].left = child }
                }
            }
        }
        guard seenSplits.allSatisfy({ $0 }), seenLeaves.allSatisfy({ $0 }) else { return nil }
        pending.append(tree)
        return ()
    }

    /// Sorts each feature's thresholds, deals the trees to the lanes and lays them out; returns the trees as TreeSHAP
    /// walks them, which the forest keeps only when it can explain (``ShapForest``).
    @discardableResult
    mutating func finish() throws(TooLarge) -> ShapTrees {
        precondition(MemoryLayout<Node>.stride == Node.stride && MemoryLayout<Node>.offset(of: \Node.left) == Node.children)
        let sorted = featureThresholds.map { Array(Set($0)).sorted() }
        guard sorted.allSatisfy({ $0.count < Int(Self.missing) }) else {
            throw TooLarge(message: "a feature has more than 65,534 distinct thresholds")
        }
        grid(sorted)
        let bounds = sorted.map { Dictionary(uniqueKeysWithValues: $0.enumerated().map { ($1, UInt16($0 + 1)) }) }
        featureThresholds = []
        // The deepest trees first, each to the lane with the fewest steps so far.
        var lanes = [[Int]](repeating: [], count: Self.width)
        var load = [Int](repeating: 0, count: Self.width)
        for tree in pending.indices.filter({ pending[$0].depth > 0 }).sorted(by: { (pending[$1].depth, $0) < (pending[$0].depth, $1) }) {
            let lane = load.indices.min { (load[$0], $0) < (load[$1], $1) }!
            lanes[lane].append(tree)
            load[lane] += pending[tree].depth
        }
        let perLane = lanes.map(\.count).max() ?? 0
        guard perLane < Int(UInt16.max) else { throw TooLarge(message: "the model has \(pending.count) trees, more than AutoServe can lay out") }
        let splits = pending.reduce(0) { $0 + $1.slots.count }
        guard splits < Int(Int32.max) / Node.stride - pending.count - 1 else {
            throw TooLarge(message: "the model has \(splits) splits, more than AutoServe can lay out")
        }
        entries = [Int32](repeating: 0, count: pending.count)
        entryCount = Self.width * (perLane + 1)
        nodes[0].entry = UInt16(perLane)
        for (lane, trees) in lanes.enumerated() {
            laneRoots[lane] = trees.isEmpty ? 0 : Int32(nodes.count * Node.stride)
            for (place, index) in trees.enumerated() {
                let tree = pending[index]
                let root = nodes.count
                // Where a leaf leads: the next tree of the lane, or node 0.
                let next = place + 1 < trees.count ? Int32((root + tree.slots.count) * Node.stride) : 0
                entries[index] = Int32(place * Self.width + lane)
                for split in tree.slots.indices {
                    let (left, right) = tree.children[split]
                    let slot = Int(tree.slots[split])
                    nodes.append(
                        Node(
                            slot: tree.slots[split], bound: slot < 2 * features ? bounds[slot % features][tree.thresholds[split]]! : 1,
                            entry: UInt16(place), left: left >= 0 ? Int32((root + left) * Node.stride) : next,
                            right: right >= 0 ? Int32((root + right) * Node.stride) : next))
                    leafValues += [left < 0 ? tree.leaves[~left] : 0, right < 0 ? tree.leaves[~right] : 0]
                }
            }
        }
        var shap = ShapTrees()
        shap.uncovered = pending.contains { $0.leafCovers.count != $0.leaves.count }
        for tree in pending {
            shap.add(
                slots: tree.slots,
                bounds: tree.slots.indices.map { split in
                    let slot = Int(tree.slots[split])
                    return slot < 2 * features ? bounds[slot % features][tree.thresholds[split]]! : 1
                }, features: tree.features, children: tree.children, covers: tree.covers, leaves: tree.leaves, leafCovers: tree.leafCovers,
                depth: tree.depth)
        }
        // A tree that is a single leaf: a node that is never walked holds its value on both sides, and its entry,
        // after the walk's, is set to that node's left child before each gathering.
        for (index, tree) in pending.enumerated() where tree.slots.isEmpty {
            entries[index] = Int32(entryCount)
            constants.append((Int32(entryCount), Int32(nodes.count * Node.stride + Node.children)))
            entryCount += 1
            nodes.append(Node())
            leafValues += [tree.leaves[0], tree.leaves[0]]
        }
        pending = []
        return shap
    }

    /// A row's bins, per slot: per feature, how many of its thresholds lie below the value (`<` for LightGBM, `<=`
    /// for XGBoost), in both of its slots, and for a missing value (NaN), `missing` in the first and 0 in the second;
    /// per special split, 0 when `special(split, value)` sends the value left, else 1.
    @inline(__always)
    func bins(_ row: UnsafeBufferPointer<Double>, into bins: UnsafeMutablePointer<UInt16>, special: (Special, Double) -> Bool) {
        thresholds.withUnsafeBufferPointer { thresholds in
            grids.withUnsafeBufferPointer { grids in
                cells.withUnsafeBufferPointer { cells in
                    for feature in 0..<features {
                        let value = row[feature]
                        let grid = grids[feature]
                        // The value's cell (NaN's is 0), and the thresholds in it: those before it are below the
                        // value, those after it above (see Grid).
                        let cell = grid.cells &+ grid.cell(value)
                        var low = grid.first &+ Int(cells[cell])
                        var length = grid.first &+ Int(cells[cell &+ 1]) &- low
                        // A binary search whose steps are selects, not branches: the count of thresholds below the value.
                        while length > 0 {
                            let half = length &>> 1
                            let below = strict ? thresholds[low &+ half] <= value : thresholds[low &+ half] < value
                            low = below ? low &+ half &+ 1 : low
                            length = below ? length &- half &- 1 : half
                        }
                        let bin = UInt16(truncatingIfNeeded: low &- grid.first)
                        bins[feature] = value.isNaN ? Self.missing : bin
                        bins[features &+ feature] = value.isNaN ? 0 : bin
                    }
                }
            }
        }
        for (slot, split) in specials.enumerated() {
            bins[2 &* features &+ slot] = special(split, row[split.feature]) ? 0 : 1
        }
    }

    /// A feature's thresholds on a grid of equal cells between the smallest and the largest: a value's cell is
    /// `(value - low) * scale`, truncated and clamped, and `cells` holds per cell (and one past the last) how many of
    /// the thresholds have a cell before it. As the cell of a number never decreases with the number, a threshold in
    /// an earlier cell than a value's is below it and one in a later cell above it: the value's bin is found among the
    /// thresholds of its own cell, usually none or one.
    struct Grid: Sendable {
        var low = 0.0
        var scale = 0.0
        /// The last cell's index, as a `Double`.
        var last = 0.0
        /// Where the feature's thresholds and cells start.
        var first = 0
        var cells = 0

        /// The cell of `value` (NaN's is 0): the same function lays the grid out and looks a value up.
        @inline(__always)
        func cell(_ value: Double) -> Int {
            let position = (value - low) * scale
            return Int(position >= 0 ? (position < last ? position : last) : 0)
        }
    }

    /// Lays out the grid of each feature's sorted thresholds.
    mutating func grid(_ sorted: [[Double]]) {
        for list in sorted {
            var grid = Grid(first: thresholds.count, cells: cells.count)
            // About four cells per threshold, a power of two, at most 65,536.
            let count = list.count < 2 ? 1 : min(1 << (Int.bitWidth - (4 * list.count - 1).leadingZeroBitCount), 1 << 16)
            if let smallest = list.first, let largest = list.last, largest > smallest, (largest - smallest).isFinite {
                grid.low = smallest
                grid.scale = Double(count) / (largest - smallest)
                grid.last = Double(count - 1)
            }
            var below = 0
            for cell in 0...count {
                while below < list.count && grid.cell(list[below]) < cell { below += 1 }
                cells.append(UInt16(below))
            }
            thresholds += list
            grids.append(grid)
        }
    }

    /// Walks every tree to its leaf and returns `body` of the trees' leaves. `special(split, value)` decides a
    /// special split (true: left) from the row's value of its feature.
    @inline(__always)
    func score<Result>(_ row: [Double], special: (Special, Double) -> Bool, _ body: (Leaves) -> Result) -> Result {
        row.withUnsafeBufferPointer { row in
            withUnsafeTemporaryAllocation(of: UInt16.self, capacity: max(slotCount, 1)) { bins in
                self.bins(row, into: bins.baseAddress!, special: special)
                return withUnsafeTemporaryAllocation(of: Int32.self, capacity: entryCount) { reached in
                    walk(UnsafePointer(bins.baseAddress!), into: reached.baseAddress!)
                    for (entry, place) in constants { reached[Int(entry)] = place }
                    return leafValues.withUnsafeBufferPointer { values in
                        entries.withUnsafeBufferPointer { entries in
                            body(Leaves(reached: UnsafePointer(reached.baseAddress!), entries: entries.baseAddress!, values: values.baseAddress!))
                        }
                    }
                }
            }
        }
    }

    /// The leaf each tree reached, by the place of the child its walk went to last.
    struct Leaves {
        let reached: UnsafePointer<Int32>
        let entries: UnsafePointer<Int32>
        let values: UnsafePointer<Double>

        /// The value of tree `tree`'s leaf.
        @inline(__always)
        subscript(tree: Int) -> Double {
            // A child's place is 16 * node + 8 + 4 * side: its value is at 2 * node + side.
            let place = Int(UInt32(bitPattern: reached[Int(entries[tree])]))
            return values[(place &>> 3) &- 1 &+ (place &>> 2) & 1]
        }
    }

    /// Walks the lanes until each idles on node 0, writing the place of the child each step goes to (the node's
    /// offset, plus ``Node/children`` and 4 for a right one) to its tree's entry.
    @inline(__always)
    func walk(_ bins: UnsafePointer<UInt16>, into reached: UnsafeMutablePointer<Int32>) {
        nodes.withUnsafeBytes { raw in
            let base = raw.baseAddress!
            @inline(__always)
            func step(_ offset: inout Int, _ lane: Int) {
                let node = base + offset
                let bin = bins[Int(node.load(as: UInt32.self))]
                // The child's place, 4 more for the right one: it is loaded from there, not chosen by a branch the
                // processor would have to predict.
                let place = offset &+ Node.children &+ (bin < node.load(fromByteOffset: 4, as: UInt16.self) ? 0 : 4)
                reached[Int(node.load(fromByteOffset: 6, as: UInt16.self)) &* Self.width &+ lane] = Int32(truncatingIfNeeded: place)
                offset = Int((base + place).load(as: Int32.self))
            }
            var n0 = Int(laneRoots[0])
            var n1 = Int(laneRoots[1])
            var n2 = Int(laneRoots[2])
            var n3 = Int(laneRoots[3])
            var n4 = Int(laneRoots[4])
            var n5 = Int(laneRoots[5])
            var n6 = Int(laneRoots[6])
            var n7 = Int(laneRoots[7])
            var n8 = Int(laneRoots[8])
            var n9 = Int(laneRoots[9])
            while (n0 | n1 | n2 | n3 | n4) | (n5 | n6 | n7 | n8 | n9) != 0 {
                step(&n0, 0)
                step(&n1, 1)
                step(&n2, 2)
                step(&n3, 3)
                step(&n4, 4)
                step(&n5, 5)
                step(&n6, 6)
                step(&n7, 7)
                step(&n8, 8)
                step(&n9, 9)
            }
        }
    }
}

/// Sets of categories as bitsets, one after the other: set `c` is `bits[bounds[c] ..< bounds[c + 1]]`.
struct CategorySets: Sendable {
    var bounds: [Int32] = [0]
    var bits: [UInt32] = []

    var count: Int { bounds.count - 1 }

    /// Why a model's category sets were refused (``TreeModelLimits/categoryWords``).
    static let tooLarge =
        "the model's category sets take more than \((TreeModelLimits.categoryWords * 4) >> 20) MiB of bitsets (the limit); a category numbered in the millions asks for a bitset that large"

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
