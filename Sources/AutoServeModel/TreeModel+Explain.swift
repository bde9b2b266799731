import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

extension TreeModel {
    /// Why this model cannot explain its scores (its file keeps no node counts, a tree is too deep), or `nil` when it
    /// can.
    public var explanationRefusal: String? {
        switch trees {
        case .lightgbm(let forest): forest.lanes.shap.refusal
        case .xgboost(let forest): forest.lanes.shap.refusal
        }
    }

    /// The exact SHAP contributions of one row of features (in the model's order; NaN is a missing value), as the
    /// library's `predict(pred_contrib=True)` (LightGBM) or `predict(pred_contribs=True)` (XGBoost) computes them: per
    /// class (one for a binary or a regression model), one contribution per feature and the expected value last, in
    /// raw-score space, so that each class's values add up to its raw score. The model must be able to explain
    /// (``explanationRefusal`` is `nil`).
    public func contributions(_ features: [Double]) -> [[Double]] {
        switch trees {
        case .lightgbm(let forest): forest.contributions(features)
        case .xgboost(let forest): forest.contributions(features)
        }
    }
}

/// What one row's TreeSHAP needs beside the model: the row's bins and the walk's path, in one allocation.
struct ShapScratch<Number: ShapNumber> {
    let bins: UnsafeMutablePointer<UInt16>
    let path: UnsafeMutablePointer<ShapPathElement<Number>>
    let numbers: UnsafeMutablePointer<Number>
    let features: UnsafeMutablePointer<Int32>
    private let bytes: UnsafeMutableRawPointer

    init(lanes: TreeLanes, pathCount: Int, numberCount: Int) {
        let binBytes = (max(lanes.slotCount, 1) * 2 + 15) & ~15
        let pathBytes = pathCount * MemoryLayout<ShapPathElement<Number>>.stride
        let numberBytes = numberCount * MemoryLayout<Number>.stride
        let depth = lanes.shap.depth + 1
        bytes = .allocate(byteCount: binBytes + pathBytes + numberBytes + depth * 4, alignment: 16)
        bins = bytes.bindMemory(to: UInt16.self, capacity: max(lanes.slotCount, 1))
        path = (bytes + binBytes).bindMemory(to: ShapPathElement<Number>.self, capacity: pathCount)
        numbers = (bytes + binBytes + pathBytes).bindMemory(to: Number.self, capacity: numberCount)
        features = (bytes + binBytes + pathBytes + numberBytes).bindMemory(to: Int32.self, capacity: depth)
    }

    func deallocate() { bytes.deallocate() }
}

extension LightGBMForest {
    /// `Tree::ExpectedValue` of each tree: its leaves' values weighed by their counts, in the leaves' order.
    static func expectedValues(_ shap: ShapTrees) -> [Double] {
        (0..<shap.treeCount).map { tree in
            let root = shap.roots[tree]
            let leaves = Int(shap.leafStarts[tree])..<Int(shap.leafStarts[tree + 1])
            guard root >= 0 else { return shap.leafValues[leaves.lowerBound] }
            let total = shap.splitCovers[Int(root)]
            var value = 0.0
            for leaf in leaves { value += (shap.leafCovers[leaf] / total) * shap.leafValues[leaf] }
            return value
        }
    }

    /// The Gauss–Legendre rules of 1 to ⌈n / 2⌉ points for paths of up to n distinct features, one after the other
    /// (see ``QuadratureShapWalk``).
    static func quadrature(_ shap: ShapTrees, features: Int) -> (nodes: [Double], weights: [Double]) {
        var nodes: [Double] = []
        var weights: [Double] = []
        for count in 1...max(1, (min(shap.depth, features) + 1) / 2) {
            let rule = GaussLegendre.rule(count)
            nodes += rule.nodes
            weights += rule.weights
        }
        return (nodes, weights)
    }

    /// `GBDT::PredictContrib`: each tree's expected value and its TreeSHAP contributions added to its class's, in the
    /// trees' order; by quadrature (``QuadratureShapWalk``, its trees shared with ``ShapHelper`` and the two runs' sums
    /// added at the end), or `exactly` as LightGBM computes it (``ShapWalk``, in one run).
    func contributions(_ features: [Double], exactly: Bool = false) -> [[Double]] {
        guard let tables = shapTables else { return [] }
        let shap = lanes.shap
        let width = lanes.features + 1
        let depth = shap.depth
        let count = treesPerIteration * width
        // The second run's sums after the first's.
        let output = UnsafeMutablePointer<Double>.allocate(capacity: 2 * count)
        defer { output.deallocate() }
        output.initialize(repeating: 0, count: 2 * count)
        func walk(_ trees: Range<Int>) {
            let scratch = ShapScratch<Double>(
                lanes: lanes, pathCount: exactly ? ShapWalk<Double>.pathCapacity(depth: depth) : 0,
                numberCount: QuadratureShapWalk.scratchCount(depth: depth))
            defer { scratch.deallocate() }
            features.withUnsafeBufferPointer { lanes.bins($0, into: scratch.bins, special: special) }
            let sums = output + (trees.lowerBound == 0 ? 0 : count)
            quadrature.nodes.withUnsafeBufferPointer { nodes in
                quadrature.weights.withUnsafeBufferPointer { weights in
                    for tree in trees {
                        let phi = sums + (tree % treesPerIteration) * width
                        phi[width - 1] += expectedValues[tree]
                        let root = shap.roots[tree]
                        guard root >= 0 else { continue }
                        if exactly {
                            ShapWalk(tables, bins: scratch.bins, phi: phi, skipsZeroFraction: false)
                                .walk(root, depth: 0, parent: scratch.path, parentZero: 1, parentOne: 1, parentFeature: -1)
                        } else {
                            QuadratureShapWalk(
                                tables, rules: (nodes.baseAddress!, weights.baseAddress!), bins: scratch.bins, phi: phi, scratch: scratch.numbers,
                                features: scratch.features, depth: depth
                            ).walk(root, count: 0)
                        }
                    }
                }
            }
        }
        if exactly { walk(0..<shap.treeCount) } else { ShapHelper.shared.split(shap, walk) }
        for index in 0..<count { output[index] += output[count + index] }
        return (0..<treesPerIteration).map { Array(UnsafeBufferPointer(start: output + $0 * width, count: width)) }
    }
}

extension XGBoostForest {
    /// Per tree, the mean value of its root (`FillNodeMeanValues`, in `Float`): its expected value.
    static func means(_ tables: ShapTables<Float>, _ shap: ShapTrees) -> [Float] {
        func cover(_ node: Int32) -> Float { node >= 0 ? tables.splitCovers[Int(node)] : tables.leafCovers[Int(~node)] }
        func mean(_ node: Int32) -> Float {
            guard node >= 0 else { return tables.leafValues[Int(~node)] }
            let split = tables.splits[Int(node)]
            var result = mean(split.left) * cover(split.left)
            result += mean(split.right) * cover(split.right)
            result /= tables.splitCovers[Int(node)]
            return result
        }
        return shap.roots.map(mean)
    }

    /// `CPUPredictor::PredictContribution`: per tree, its mean value and TreeSHAP in a buffer of its own, in `Float`,
    /// then added to its class's contributions in the trees' order; the base margin added to the expected value at
    /// the end. The trees' walks are shared with ``ShapHelper``; their sums are not, so the answer is the same bits.
    func contributions(_ features: [Double]) -> [[Double]] {
        guard let tables = shapTables else { return [] }
        let shap = lanes.shap
        let width = lanes.features + 1
        let trees = shap.treeCount
        let rounded = features.map { Double(Float($0)) }
        let buffers = UnsafeMutablePointer<Float>.allocate(capacity: max(trees * width, 1))
        defer { buffers.deallocate() }
        ShapHelper.shared.split(shap) { range in
            let scratch = ShapScratch<Float>(lanes: lanes, pathCount: ShapWalk<Float>.pathCapacity(depth: shap.depth), numberCount: 0)
            defer { scratch.deallocate() }
            rounded.withUnsafeBufferPointer { lanes.bins($0, into: scratch.bins, special: categorical) }
            for tree in range {
                let phi = buffers + tree * width
                phi.initialize(repeating: 0, count: width)
                phi[width - 1] += means[tree]
                ShapWalk(tables, bins: scratch.bins, phi: phi, skipsZeroFraction: true)
                    .walk(shap.roots[tree], depth: 0, parent: scratch.path, parentZero: 1, parentOne: 1, parentFeature: -1)
            }
        }
        var output = [Float](repeating: 0, count: base.count * width)
        for tree in 0..<trees {
            let start = Int(groups[tree]) * width
            for column in 0..<width { output[start + column] += buffers[tree * width + column] }
        }
        for group in base.indices { output[group * width + width - 1] += base[group] }
        return base.indices.map { group in output[(group * width)..<((group + 1) * width)].map(Double.init) }
    }
}

/// A second thread for one row's explanation (docs/explanations.md, "Speed"): a large forest's trees are split in two
/// runs of about as many leaves, the first walked by the caller, the second by the helper at the same time, each into
/// memory of its own. One helper per process, started by the first explanation that needs it. A caller that finds it
/// busy (a model in the server's own process answers rows on many threads), and every caller where no thread could
/// be started, walks both runs itself, one after the other: the same runs, so the same answer to the bit.
final class ShapHelper: @unchecked Sendable {
    static let shared = ShapHelper()
    /// A forest of fewer leaves is walked by its caller alone: waking the helper costs more than it saves.
    static let fewestLeaves = 2_000

    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// The helper's work, set by a caller and cleared by the helper as it begins it.
    private var work: (() -> Void)?
    private var finished = false
    private var taken = false
    private var running = false

    private init() {
        pthread_mutex_init(lock, nil)
        pthread_cond_init(changed, nil)
        var thread = pthread_t()
        let started = pthread_create(
            &thread, nil,
            { helper in
                Unmanaged<ShapHelper>.fromOpaque(helper!).takeUnretainedValue().serve()
                return nil
            }, Unmanaged.passUnretained(self).toOpaque())
        if started == 0 {
            pthread_detach(thread)
            running = true
        }
    }

    /// Calls `walk` with the trees `0..<treeCount` of `shap`: in one run for a small forest, else in two, at once when
    /// the helper is free.
    func split(_ shap: ShapTrees, _ walk: (Range<Int>) -> Void) {
        let trees = shap.treeCount
        let leaves = Int(shap.leafStarts[trees])
        guard leaves >= Self.fewestLeaves, trees >= 2 else { return walk(0..<trees) }
        let middle = min(max(shap.leafStarts.firstIndex { Int($0) * 2 >= leaves } ?? trees / 2, 1), trees - 1)
        guard claim() else {
            walk(0..<middle)
            return walk(middle..<trees)
        }
        let second = { walk(middle..<trees) }
        withoutActuallyEscaping(
            second,
            do: { second in
                pthread_mutex_lock(lock)
                work = second
                finished = false
                pthread_cond_broadcast(changed)
                pthread_mutex_unlock(lock)
                walk(0..<middle)
                pthread_mutex_lock(lock)
                while !finished { pthread_cond_wait(changed, lock) }
                taken = false
                pthread_mutex_unlock(lock)
            })
    }

    private func claim() -> Bool {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard running, !taken else { return false }
        taken = true
        return true
    }

    private func serve() {
        pthread_mutex_lock(lock)
        while true {
            while work == nil { pthread_cond_wait(changed, lock) }
            var next = work
            work = nil
            pthread_mutex_unlock(lock)
            next?()
            // Released before the caller may return: its closure must not outlive the call.
            next = nil
            pthread_mutex_lock(lock)
            finished = true
            pthread_cond_broadcast(changed)
        }
    }
}
