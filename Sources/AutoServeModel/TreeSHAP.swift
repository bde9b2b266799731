import Foundation

/// A forest's trees as TreeSHAP walks them (docs/explanations.md, "Tree models"): per split, the slot and bound the
/// scoring walk decides it with (so that a row goes where the library sends it, missing values and categories
/// included), its feature, its children and its cover; per leaf, its value and cover.
///
/// The walk is the path-dependent TreeSHAP of Lundberg, Erion and Lee (arXiv:1802.03888) as LightGBM's
/// `Tree::TreeSHAP` and XGBoost's `TreeShap` (3.2) compute it, operation for operation, in the library's own
/// precision: the contributions are the library's to the last bit, not merely close to them.
struct ShapTrees: Sendable {
    struct Split: Sendable {
        var slot: UInt32
        var bound: UInt16
        var feature: Int32
        /// A split's index, or `~leaf`.
        var left: Int32
        var right: Int32
        var cover: Double
    }

    var splits: [Split] = []
    var splitCovers: [Double] = []
    var leafValues: [Double] = []
    var leafCovers: [Double] = []
    /// Per tree: its root (a split's index, or `~leaf` for a tree of one leaf), where its leaves start (one more entry
    /// at the end), and its depth in splits.
    var roots: [Int32] = []
    var leafStarts: [Int32] = [0]
    var depths: [Int32] = []
    /// The deepest tree's depth.
    var depth = 0
    /// A tree came without covers: the file does not keep them, and nothing can be explained.
    var uncovered = false
    /// The deepest tree explained: a leaf costs the square of its depth, and a chain of LightGBM's 131,072 leaves
    /// would take hours a row (docs/explanations.md, "Limits").
    static let deepest = 256

    var treeCount: Int { roots.count }

    mutating func add(
        slots: [UInt32], bounds: [UInt16], features: [Int32], children: [(left: Int, right: Int)], covers: [Double], leaves: [Double],
        leafCovers: [Double], depth: Int
    ) {
        let firstSplit = Int32(splits.count)
        let firstLeaf = Int32(leafValues.count)
        func child(_ index: Int) -> Int32 { index >= 0 ? firstSplit + Int32(index) : ~(firstLeaf + Int32(~index)) }
        for split in slots.indices {
            splits.append(
                Split(
                    slot: slots[split], bound: bounds[split], feature: features[split], left: child(children[split].left),
                    right: child(children[split].right), cover: covers[split]))
        }
        splitCovers += covers
        leafValues += leaves
        self.leafCovers += leafCovers.count == leaves.count ? leafCovers : Array(repeating: 1, count: leaves.count)
        roots.append(slots.isEmpty ? ~firstLeaf : firstSplit)
        leafStarts.append(Int32(leafValues.count))
        depths.append(Int32(depth))
        self.depth = max(self.depth, depth)
    }

    /// Why the trees cannot be explained, or `nil` when they can: every cover must be a finite number, a split's more
    /// than 0 (TreeSHAP divides by it), a leaf's at least 0.
    var refusal: String? {
        if uncovered { return "the model file keeps no node counts (LightGBM's internal_count and leaf_count, XGBoost's sum_hessian)" }
        if let bad = splits.first(where: { !($0.cover.isFinite && $0.cover > 0) }) {
            return "a split's count is \(bad.cover); TreeSHAP needs a positive count at every split"
        }
        if let bad = leafCovers.first(where: { !($0.isFinite && $0 >= 0) }) { return "a leaf's count is \(bad); TreeSHAP needs counts of 0 or more" }
        if let deep = depths.firstIndex(where: { $0 > Self.deepest }) {
            return
                "tree \(deep) is \(depths[deep]) splits deep, and AutoServe explains trees of up to \(Self.deepest) levels (the work grows with the square of the depth)"
        }
        return nil
    }
}

/// One element of the path TreeSHAP keeps from the root to a node: a feature met on the way, the fraction of the
/// training data that goes its way (`zero`), whether the row does (`one`) and the permutation weight of the
/// element's position (`weight`, which belongs to the position, not to the feature).
struct ShapPathElement<Number: ShapNumber> {
    var feature: Int32
    var zero: Number
    var one: Number
    var weight: Number
}

/// TreeSHAP for one tree, in `Number` (`Double` as LightGBM computes it, `Float` as XGBoost does): the functions of
/// the libraries, with their operations in their order, so that rounding is the same.
struct ShapWalk<Number: ShapNumber> {
    let trees: UnsafeMutableBufferPointer<ShapTrees.Split>
    let leafValues: UnsafeMutableBufferPointer<Number>
    let leafCovers: UnsafeMutableBufferPointer<Number>
    let splitCovers: UnsafeMutableBufferPointer<Number>
    let bins: UnsafePointer<UInt16>
    /// The contributions, one per feature.
    let phi: UnsafeMutablePointer<Number>
    /// XGBoost skips the division of an unwound sum by a zero fraction (LightGBM divides and gets infinity).
    let skipsZeroFraction: Bool

    init(_ tables: ShapTables<Number>, bins: UnsafePointer<UInt16>, phi: UnsafeMutablePointer<Number>, skipsZeroFraction: Bool) {
        trees = tables.splits
        leafValues = tables.leafValues
        leafCovers = tables.leafCovers
        splitCovers = tables.splitCovers
        self.bins = bins
        self.phi = phi
        self.skipsZeroFraction = skipsZeroFraction
    }

    @inline(__always)
    func cover(_ node: Int32) -> Number { node >= 0 ? splitCovers[Int(node)] : leafCovers[Int(~node)] }

    /// `ExtendPath` (see ``ShapNumber/extend(_:_:_:_:_:)``).
    @inline(__always)
    static func extend(_ path: UnsafeMutablePointer<ShapPathElement<Number>>, _ depth: Int, _ zero: Number, _ one: Number, _ feature: Int32) {
        Number.extend(path, depth, zero, one, feature)
    }

    /// `UnwindPath`: the element at `index` is taken out of the path.
    @inline(__always)
    static func unwind(_ path: UnsafeMutablePointer<ShapPathElement<Number>>, _ depth: Int, _ index: Int) {
        let one = path[index].one
        let zero = path[index].zero
        var next = path[depth].weight
        let size = Number(depth + 1)
        var i = depth - 1
        while i >= 0 {
            if one != 0 {
                let kept = path[i].weight
                path[i].weight = next * size / (Number(i + 1) * one)
                next = kept - path[i].weight * zero * Number(depth - i) / size
            } else {
                path[i].weight = (path[i].weight * size) / (zero * Number(depth - i))
            }
            i -= 1
        }
        for position in index..<depth {
            path[position].feature = path[position + 1].feature
            path[position].zero = path[position + 1].zero
            path[position].one = path[position + 1].one
        }
    }

    /// `UnwoundPathSum`: the total weight of the path without the element at `index`.
    @inline(__always)
    static func unwoundSum(_ path: UnsafeMutablePointer<ShapPathElement<Number>>, _ depth: Int, _ index: Int, skipsZeroFraction: Bool) -> Number {
        let one = path[index].one
        let zero = path[index].zero
        var next = path[depth].weight
        var total: Number = 0
        let size = Number(depth + 1)
        var i = depth - 1
        while i >= 0 {
            if one != 0 {
                let part = next * size / (Number(i + 1) * one)
                total += part
                next = path[i].weight - part * zero * (Number(depth - i) / size)
            } else if zero != 0 || !skipsZeroFraction {
                total += (path[i].weight / zero) / (Number(depth - i) / size)
            }
            i -= 1
        }
        return total
    }

    /// `TreeSHAP`: walks the subtree of `node`, the path so far at `parent` (`depth` elements), adding each leaf's
    /// share to `phi`.
    func walk(
        _ node: Int32, depth: Int, parent: UnsafeMutablePointer<ShapPathElement<Number>>, parentZero: Number, parentOne: Number, parentFeature: Int32
    ) {
        // Each level copies the path after its parent's: the buffer holds depth × (depth + 1) / 2 elements at most.
        let path = parent + depth
        if depth > 0 { path.update(from: parent, count: depth) }
        Self.extend(path, depth, parentZero, parentOne, parentFeature)
        if node < 0 {
            if depth >= 1 { Number.addLeaf(leafValues[Int(~node)], path: path, depth: depth, to: phi, skipsZeroFraction: skipsZeroFraction) }
            return
        }
        let split = trees[Int(node)]
        let hot = bins[Int(split.slot)] < split.bound ? split.left : split.right
        let cold = hot == split.left ? split.right : split.left
        let weight = splitCovers[Int(node)]
        let hotZero = cover(hot) / weight
        let coldZero = cover(cold) / weight
        var incomingZero: Number = 1
        var incomingOne: Number = 1
        var depth = depth
        // A feature already on the path is taken out, to come back with both of its splits' fractions.
        var index = 0
        while index <= depth, path[index].feature != split.feature { index += 1 }
        if index <= depth {
            incomingZero = path[index].zero
            incomingOne = path[index].one
            Self.unwind(path, depth, index)
            depth -= 1
        }
        if hot < 0, cold < 0 {
            // Two leaves: both paths made, then both shares computed side by side and added in the library's order.
            let next = depth + 1
            let hotPath = path + next
            hotPath.update(from: path, count: next)
            Self.extend(hotPath, next, hotZero * incomingZero, incomingOne, split.feature)
            let coldPath = hotPath + next + 1
            coldPath.update(from: path, count: next)
            Self.extend(coldPath, next, coldZero * incomingZero, 0, split.feature)
            Number.addLeaves(
                leafValues[Int(~hot)], hotPath, leafValues[Int(~cold)], coldPath, depth: next, to: phi, skipsZeroFraction: skipsZeroFraction)
            return
        }
        walk(hot, depth: depth + 1, parent: path, parentZero: hotZero * incomingZero, parentOne: incomingOne, parentFeature: split.feature)
        walk(cold, depth: depth + 1, parent: path, parentZero: coldZero * incomingZero, parentOne: 0, parentFeature: split.feature)
    }

    /// The path buffer one tree of `depth` splits needs.
    static func pathCapacity(depth: Int) -> Int { (depth + 2) * (depth + 3) / 2 + depth + 3 }
}

/// TreeSHAP's numbers of one forest in `Number`, in memory of their own for the life of the model, so that the walks
/// read them through plain pointers. `@unchecked Sendable`: written when the model loads, only read after.
final class ShapTables<Number: ShapNumber>: @unchecked Sendable {
    let splits: UnsafeMutableBufferPointer<ShapTrees.Split>
    let leafValues: UnsafeMutableBufferPointer<Number>
    let leafCovers: UnsafeMutableBufferPointer<Number>
    let splitCovers: UnsafeMutableBufferPointer<Number>

    init(_ shap: ShapTrees) {
        func copy<Element>(_ values: [Element]) -> UnsafeMutableBufferPointer<Element> {
            let buffer = UnsafeMutableBufferPointer<Element>.allocate(capacity: max(values.count, 1))
            _ = buffer.initialize(from: values)
            return buffer
        }
        splits = copy(shap.splits)
        leafValues = copy(shap.leafValues.map { Number($0) })
        leafCovers = copy(shap.leafCovers.map { Number($0) })
        splitCovers = copy(shap.splitCovers.map { Number($0) })
    }

    deinit {
        splits.deallocate()
        leafValues.deallocate()
        leafCovers.deallocate()
        splitCovers.deallocate()
    }
}

/// What a forest's explanations read, built once when the model loads and held by one reference, apart from what its
/// scores read: a row that is not explained never touches it.
final class ShapForest<Number: ShapNumber>: Sendable {
    let tables: ShapTables<Number>
    /// Per tree: its root (a split's index, or `~leaf` for a tree of one leaf) and its expected value, the base of its
    /// contributions.
    let roots: [Int32]
    let expected: [Number]
    /// The deepest tree's depth, in splits.
    let depth: Int
    /// The leaves of all the trees.
    let leafCount: Int
    /// The runs of trees the explanations share between two threads (``ShapHelper/runs(_:)``).
    let runs: [Range<Int>]
    /// LightGBM's Gauss–Legendre rules (``QuadratureShapWalk``); empty for XGBoost.
    let quadrature: (nodes: [Double], weights: [Double])

    /// `expected` computes each tree's expected value, as the library does, from the trees or their tables.
    init(
        _ shap: ShapTrees, quadrature: (nodes: [Double], weights: [Double]) = ([], []),
        expected: (ShapTrees, ShapTables<Number>) -> [Number]
    ) {
        tables = ShapTables(shap)
        roots = shap.roots
        self.expected = expected(shap, tables)
        depth = shap.depth
        leafCount = Int(shap.leafStarts[shap.treeCount])
        runs = ShapHelper.runs(shap)
        self.quadrature = quadrature
    }
}

/// A number TreeSHAP computes in, with its way of adding a leaf's share: every element of the path in turn
/// (`Double`), or eight at a time in the lanes of a vector, each lane doing the same operations in the same order as
/// the scalar code (`Float`, for XGBoost's speed: its walk cannot trade its rounding for a faster method).
protocol ShapNumber: BinaryFloatingPoint, Sendable {
    /// `ExtendPath`.
    static func extend(_ path: UnsafeMutablePointer<ShapPathElement<Self>>, _ depth: Int, _ zero: Self, _ one: Self, _ feature: Int32)

    static func addLeaf(
        _ value: Self, path: UnsafeMutablePointer<ShapPathElement<Self>>, depth: Int, to phi: UnsafeMutablePointer<Self>, skipsZeroFraction: Bool)

    /// Two sibling leaves, `first`'s share added before `second`'s.
    static func addLeaves(
        _ first: Self, _ firstPath: UnsafeMutablePointer<ShapPathElement<Self>>, _ second: Self, _ secondPath: UnsafeMutablePointer<ShapPathElement<Self>>,
        depth: Int, to phi: UnsafeMutablePointer<Self>, skipsZeroFraction: Bool)
}

extension ShapNumber {
    /// `ExtendPath`: the path grows by one element. The library's loop sets each weight to its zero share and then
    /// adds its one share, the next position's, in a chain from position to position; each new weight is computed here
    /// from the old ones at once, with the same operations, which lets the processor overlap the positions.
    @inline(__always)
    static func extendPath(_ path: UnsafeMutablePointer<ShapPathElement<Self>>, _ depth: Int, _ zero: Self, _ one: Self, _ feature: Int32) {
        path[depth] = ShapPathElement(feature: feature, zero: zero, one: one, weight: depth == 0 ? 1 : 0)
        guard depth > 0 else { return }
        let size = Self(depth + 1)
        if one == 0 {
            // The side the row does not take: every one share is 0 × a finite weight, +0, and x + 0 is x; only the
            // zero shares are left to compute (the covers are finite, so the weights are).
            var position = depth - 1
            while position >= 0 {
                path[position].weight = zero * path[position].weight * Self(depth - position) / size
                position -= 1
            }
            return
        }
        path[depth].weight += one * path[depth - 1].weight * Self(depth) / size
        var position = depth - 1
        while position >= 1 {
            let zeroShare = zero * path[position].weight * Self(depth - position) / size
            path[position].weight = zeroShare + one * path[position - 1].weight * Self(position) / size
            position -= 1
        }
        path[0].weight = zero * path[0].weight * Self(depth) / size
    }

    static func extend(_ path: UnsafeMutablePointer<ShapPathElement<Self>>, _ depth: Int, _ zero: Self, _ one: Self, _ feature: Int32) {
        extendPath(path, depth, zero, one, feature)
    }

    static func addLeaves(
        _ first: Self, _ firstPath: UnsafeMutablePointer<ShapPathElement<Self>>, _ second: Self, _ secondPath: UnsafeMutablePointer<ShapPathElement<Self>>,
        depth: Int, to phi: UnsafeMutablePointer<Self>, skipsZeroFraction: Bool
    ) {
        addLeaf(first, path: firstPath, depth: depth, to: phi, skipsZeroFraction: skipsZeroFraction)
        addLeaf(second, path: secondPath, depth: depth, to: phi, skipsZeroFraction: skipsZeroFraction)
    }
}

extension Double: ShapNumber {
    /// The leaf loop of `TreeSHAP`: each element's unwound sum times its fractions' difference times the leaf's value.
    @inline(__always)
    static func addLeaf(
        _ value: Double, path: UnsafeMutablePointer<ShapPathElement<Double>>, depth: Int, to phi: UnsafeMutablePointer<Double>, skipsZeroFraction: Bool
    ) {
        for index in 1...depth {
            let weight = ShapWalk<Double>.unwoundSum(path, depth, index, skipsZeroFraction: skipsZeroFraction)
            let element = path[index]
            phi[Int(element.feature)] += weight * (element.one - element.zero) * value
        }
    }
}

extension Float: ShapNumber {
    /// The leaf loop of `TreeShap`, eight elements' unwound sums at a time (two vectors of four, whose chains of
    /// divisions overlap): each lane does the operations of the branch of `UnwoundPathSum` its element takes, so each sum is the scalar code's to the
    /// bit (the elements add to different features, so their order does not matter).
    @inline(never)
    static func addLeaf(
        _ value: Float, path: UnsafeMutablePointer<ShapPathElement<Float>>, depth: Int, to phi: UnsafeMutablePointer<Float>, skipsZeroFraction: Bool
    ) {
        let size = Float(depth + 1)
        var first = 1
        while first <= depth {
            let lanes = min(8, depth - first + 1)
            var one = SIMD8<Float>(repeating: 1)
            var zero = SIMD8<Float>(repeating: 1)
            for lane in 0..<lanes {
                one[lane] = path[first + lane].one
                zero[lane] = path[first + lane].zero
            }
            let byOne = one .!= 0
            let byZero = .!byOne .& (zero .!= 0 .| SIMDMask(repeating: !skipsZeroFraction))
            var next = SIMD8<Float>(repeating: path[depth].weight)
            var total = SIMD8<Float>(repeating: 0)
            var i = depth - 1
            while i >= 0 {
                let weight = SIMD8<Float>(repeating: path[i].weight)
                let ratio = Float(depth - i) / size
                // One division serves both branches: (next × size) / ((i + 1) × one) where the element's one fraction is
                // not 0, (weight / zero) / ratio where it is.
                let byWeight = weight / zero
                let numerator = (next * size).replacing(with: byWeight, where: byZero)
                let part = numerator / (Float(i + 1) * one).replacing(with: SIMD8<Float>(repeating: ratio), where: byZero)
                total.replace(with: total + part, where: byOne .| byZero)
                next.replace(with: weight - part * zero * ratio, where: byOne)
                i -= 1
            }
            for lane in 0..<lanes {
                let element = path[first + lane]
                phi[Int(element.feature)] += total[lane] * (element.one - element.zero) * value
            }
            first += 8
        }
    }

    /// Two sibling leaves of up to 8 elements each: the first's in the low half of a vector of 16, the second's in the
    /// high half, so that four chains of divisions overlap.
    @inline(__always)
    static func addLeaves(
        _ first: Float, _ firstPath: UnsafeMutablePointer<ShapPathElement<Float>>, _ second: Float, _ secondPath: UnsafeMutablePointer<ShapPathElement<Float>>,
        depth: Int, to phi: UnsafeMutablePointer<Float>, skipsZeroFraction: Bool
    ) {
        guard depth <= 8 else {
            addLeaf(first, path: firstPath, depth: depth, to: phi, skipsZeroFraction: skipsZeroFraction)
            addLeaf(second, path: secondPath, depth: depth, to: phi, skipsZeroFraction: skipsZeroFraction)
            return
        }
        let size = Float(depth + 1)
        var one = SIMD16<Float>(repeating: 1)
        var zero = SIMD16<Float>(repeating: 1)
        for lane in 0..<depth {
            one[lane] = firstPath[lane + 1].one
            zero[lane] = firstPath[lane + 1].zero
            one[lane + 8] = secondPath[lane + 1].one
            zero[lane + 8] = secondPath[lane + 1].zero
        }
        let byOne = one .!= 0
        let byZero = .!byOne .& (zero .!= 0 .| SIMDMask(repeating: !skipsZeroFraction))
        var next = SIMD16<Float>(lowHalf: SIMD8(repeating: firstPath[depth].weight), highHalf: SIMD8(repeating: secondPath[depth].weight))
        var total = SIMD16<Float>(repeating: 0)
        var i = depth - 1
        while i >= 0 {
            let weight = SIMD16<Float>(lowHalf: SIMD8(repeating: firstPath[i].weight), highHalf: SIMD8(repeating: secondPath[i].weight))
            let ratio = Float(depth - i) / size
            // One division serves both branches: (next × size) / ((i + 1) × one) where the element's one fraction is
            // not 0, (weight / zero) / ratio where it is.
            let byWeight = weight / zero
            let numerator = (next * size).replacing(with: byWeight, where: byZero)
            let part = numerator / (Float(i + 1) * one).replacing(with: SIMD16<Float>(repeating: ratio), where: byZero)
            total.replace(with: total + part, where: byOne .| byZero)
            next.replace(with: weight - part * zero * ratio, where: byOne)
            i -= 1
        }
        for lane in 0..<depth {
            let element = firstPath[lane + 1]
            phi[Int(element.feature)] += total[lane] * (element.one - element.zero) * first
        }
        for lane in 0..<depth {
            let element = secondPath[lane + 1]
            phi[Int(element.feature)] += total[lane + 8] * (element.one - element.zero) * second
        }
    }
}

/// Gauss–Legendre quadrature on [0, 1]: `nodes(count)` are exact for polynomials of degree up to 2 × count − 1.
enum GaussLegendre {
    /// The nodes and weights of the rule of `count` points, by Newton's method on the Legendre polynomial (to the
    /// last bits of a `Double`).
    static func rule(_ count: Int) -> (nodes: [Double], weights: [Double]) {
        var nodes = [Double](repeating: 0, count: count)
        var weights = [Double](repeating: 0, count: count)
        let size = Double(count)
        for index in 0..<(count + 1) / 2 {
            var x: Double = cos(Double.pi * (Double(index) + 0.75) / (size + 0.5))
            var (value, derivative) = legendre(count, at: x)
            for _ in 0..<100 {
                let step = value / derivative
                x -= step
                (value, derivative) = legendre(count, at: x)
                if abs(step) <= 1e-16 { break }
            }
            let weight: Double = 2 / ((1 - x * x) * derivative * derivative)
            // On [0, 1]: t = (1 ± x) / 2, with half the weight.
            nodes[index] = (1 - x) / 2
            nodes[count - 1 - index] = (1 + x) / 2
            weights[index] = weight / 2
            weights[count - 1 - index] = weight / 2
        }
        return (nodes, weights)
    }

    /// The Legendre polynomial of degree `degree` at `x` and its derivative, by the three-term recurrence.
    static func legendre(_ degree: Int, at x: Double) -> (value: Double, derivative: Double) {
        var previous = 1.0
        var current = x
        if degree >= 2 {
            for order in 2...degree {
                let n = Double(order)
                let next: Double = ((2 * n - 1) * x * current - (n - 1) * previous) / n
                previous = current
                current = next
            }
        }
        let derivative: Double = Double(degree) * (x * current - previous) / (x * x - 1)
        return (current, derivative)
    }
}

/// Path-dependent TreeSHAP by quadrature, in `Double`: the same contributions as ``ShapWalk`` up to the rounding of a
/// few operations (far inside the 1e-9 of docs/explanations.md), in a fraction of its time.
///
/// A leaf of value v, reached through the distinct features i of its path, each with z_i (the share of the training
/// data that takes the path's sides of i's splits) and o_i (1 when the row takes them all, else 0), gives feature j
/// v (o_j − z_j) ∫₀¹ ∏_{i≠j} (z_i + t (o_i − z_i)) dt: the Shapley weights |S|! (n − |S| − 1)! / n! are the Beta
/// integrals ∫₀¹ t^|S| (1 − t)^(n−|S|−1) dt. The integrand is a polynomial of degree n − 1, which a Gauss–Legendre
/// rule of ⌈n / 2⌉ points integrates exactly: per leaf, n × ⌈n / 2⌉ products instead of TreeSHAP's n² divisions in
/// a chain (the idea of Linear TreeShap, Yu et al. 2022, and XGBoost's later quadrature TreeSHAP).
struct QuadratureShapWalk {
    let splits: UnsafeMutableBufferPointer<ShapTrees.Split>
    let leafValues: UnsafeMutableBufferPointer<Double>
    let leafCovers: UnsafeMutableBufferPointer<Double>
    let splitCovers: UnsafeMutableBufferPointer<Double>
    let bins: UnsafePointer<UInt16>
    let phi: UnsafeMutablePointer<Double>
    /// Per rule size m (1-based), its nodes and weights at `[m * (m - 1) / 2 ..< m * (m + 1) / 2]`.
    let ruleNodes: UnsafePointer<Double>
    let ruleWeights: UnsafePointer<Double>
    /// The path's distinct features and their fractions (`depth` entries at most).
    let features: UnsafeMutablePointer<Int32>
    let zeros: UnsafeMutablePointer<Double>
    let ones: UnsafeMutablePointer<Double>
    /// Per entry, for one quadrature point: the product of the factors before it, its own factor; over the points,
    /// the integral's sum.
    let prefix: UnsafeMutablePointer<Double>
    let factors: UnsafeMutablePointer<Double>
    let sums: UnsafeMutablePointer<Double>

    /// A walk with `scratch` room for ``scratchCount(depth:)`` numbers and `features` for `depth + 1` features.
    init(
        _ tables: ShapTables<Double>, rules: (nodes: UnsafePointer<Double>, weights: UnsafePointer<Double>), bins: UnsafePointer<UInt16>,
        phi: UnsafeMutablePointer<Double>, scratch: UnsafeMutablePointer<Double>, features: UnsafeMutablePointer<Int32>, depth: Int
    ) {
        splits = tables.splits
        leafValues = tables.leafValues
        leafCovers = tables.leafCovers
        splitCovers = tables.splitCovers
        self.bins = bins
        self.phi = phi
        (ruleNodes, ruleWeights) = rules
        self.features = features
        zeros = scratch
        ones = scratch + (depth + 1)
        prefix = scratch + 2 * (depth + 1)
        factors = scratch + 3 * (depth + 1)
        sums = scratch + 4 * (depth + 1)
    }

    static func scratchCount(depth: Int) -> Int { 5 * (depth + 1) }

    @inline(__always)
    func cover(_ node: Int32) -> Double { node >= 0 ? splitCovers[Int(node)] : leafCovers[Int(~node)] }

    /// Walks the subtree of `node` with `count` distinct features on the path so far.
    func walk(_ node: Int32, count: Int) {
        if node < 0 {
            leaf(leafValues[Int(~node)], count: count)
            return
        }
        let split = splits[Int(node)]
        let hot = bins[Int(split.slot)] < split.bound ? split.left : split.right
        let cold = hot == split.left ? split.right : split.left
        let weight = splitCovers[Int(node)]
        var index = 0
        while index < count, features[index] != split.feature { index += 1 }
        let repeated = index < count
        let (zero, one) = repeated ? (zeros[index], ones[index]) : (1.0, 1.0)
        let next = repeated ? count : count + 1
        features[index] = split.feature
        zeros[index] = zero * (cover(hot) / weight)
        ones[index] = one
        walk(hot, count: next)
        zeros[index] = zero * (cover(cold) / weight)
        ones[index] = 0
        walk(cold, count: next)
        if repeated {
            zeros[index] = zero
            ones[index] = one
        }
    }

    /// A leaf's share: per quadrature point, the prefix products of the factors z_i + t (o_i − z_i), then a running
    /// suffix product from the last entry, so that each entry gets the product of all the others.
    @inline(__always)
    func leaf(_ value: Double, count: Int) {
        guard count > 0, value != 0 else { return }
        let points = (count + 1) / 2
        let first = points * (points - 1) / 2
        for entry in 0..<count { sums[entry] = 0 }
        for point in 0..<points {
            let t = ruleNodes[first + point]
            var product = 1.0
            for entry in 0..<count {
                prefix[entry] = product
                factors[entry] = zeros[entry] + t * (ones[entry] - zeros[entry])
                product *= factors[entry]
            }
            var suffix = ruleWeights[first + point]
            var entry = count - 1
            while entry >= 0 {
                sums[entry] += prefix[entry] * suffix
                suffix *= factors[entry]
                entry -= 1
            }
        }
        for entry in 0..<count {
            let difference = ones[entry] - zeros[entry]
            if difference != 0 { phi[Int(features[entry])] += value * difference * sums[entry] }
        }
    }
}
