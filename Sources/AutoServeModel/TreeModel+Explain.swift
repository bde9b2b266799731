import Foundation
import Synchronization

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
        case .lightgbm(let forest): forest.explanationRefusal
        case .xgboost(let forest): forest.explanationRefusal
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

    init(lanes: TreeLanes, depth: Int, pathCount: Int, numberCount: Int) {
        let binBytes = (max(lanes.slotCount, 1) * 2 + 15) & ~15
        let pathBytes = pathCount * MemoryLayout<ShapPathElement<Number>>.stride
        let numberBytes = numberCount * MemoryLayout<Number>.stride
        bytes = .allocate(byteCount: binBytes + pathBytes + numberBytes + (depth + 1) * 4, alignment: 16)
        bins = bytes.bindMemory(to: UInt16.self, capacity: max(lanes.slotCount, 1))
        path = (bytes + binBytes).bindMemory(to: ShapPathElement<Number>.self, capacity: pathCount)
        numbers = (bytes + binBytes + pathBytes).bindMemory(to: Number.self, capacity: numberCount)
        features = (bytes + binBytes + pathBytes + numberBytes).bindMemory(to: Int32.self, capacity: depth + 1)
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
    /// trees' order; by quadrature (``QuadratureShapWalk``, the trees in runs shared with ``ShapHelper``, each run's sums
    /// of its own, added in the runs' order at the end), or `exactly` as LightGBM computes it (``ShapWalk``, one run).
    func contributions(_ features: [Double], exactly: Bool = false) -> [[Double]] {
        guard let shap else { return [] }
        let tables = shap.tables
        let width = lanes.features + 1
        let depth = shap.depth
        let count = treesPerIteration * width
        let runs = exactly ? [0..<shap.roots.count] : shap.runs
        let output = UnsafeMutablePointer<Double>.allocate(capacity: runs.count * count)
        defer { output.deallocate() }
        output.initialize(repeating: 0, count: runs.count * count)
        ShapHelper.shared.share(runs) { run, trees in
            let scratch = ShapScratch<Double>(
                lanes: lanes, depth: depth, pathCount: exactly ? ShapWalk<Double>.pathCapacity(depth: depth) : 0,
                numberCount: QuadratureShapWalk.scratchCount(depth: depth))
            defer { scratch.deallocate() }
            features.withUnsafeBufferPointer { lanes.bins($0, into: scratch.bins, special: special) }
            let sums = output + run * count
            shap.quadrature.nodes.withUnsafeBufferPointer { nodes in
                shap.quadrature.weights.withUnsafeBufferPointer { weights in
                    for tree in trees {
                        let phi = sums + (tree % treesPerIteration) * width
                        phi[width - 1] += shap.expected[tree]
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
        for run in 1..<runs.count {
            for index in 0..<count { output[index] += output[run * count + index] }
        }
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
        guard let shap else { return [] }
        let tables = shap.tables
        let width = lanes.features + 1
        let trees = shap.roots.count
        let rounded = features.map { Double(Float($0)) }
        let buffers = UnsafeMutablePointer<Float>.allocate(capacity: max(trees * width, 1))
        defer { buffers.deallocate() }
        ShapHelper.shared.share(shap.runs) { _, trees in
            let scratch = ShapScratch<Float>(lanes: lanes, depth: shap.depth, pathCount: ShapWalk<Float>.pathCapacity(depth: shap.depth), numberCount: 0)
            defer { scratch.deallocate() }
            rounded.withUnsafeBufferPointer { lanes.bins($0, into: scratch.bins, special: categorical) }
            for tree in trees {
                let phi = buffers + tree * width
                phi.initialize(repeating: 0, count: width)
                phi[width - 1] += shap.expected[tree]
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

/// A second thread for one row's explanation (docs/explanations.md, "Speed"): a large forest's trees are cut into runs
/// of about as many leaves, and the caller and the helper each take the next run until none is left, each run walked
/// into memory of its own; the answer is the same to the bit whoever walked which run. One helper per process, started
/// by the first explanation that needs it. A caller that finds it busy (a model in the server's own process answers
/// rows on many threads), and every caller where no thread could be started, walks every run itself; a helper slow to
/// wake (an idle core of a virtual machine can take most of a millisecond) finds fewer runs, or none, left. So after a
/// row the helper waits ``spin`` for the next one awake, yielding its core to any other thread that wants it, as
/// OpenMP's threads do, before it sleeps.
final class ShapHelper: @unchecked Sendable {
    static let shared = ShapHelper()
    /// A forest of fewer leaves is walked by its caller in one run: waking the helper costs more than it saves.
    static let fewestLeaves = 2_000
    /// The runs of a large forest: enough that a late helper leaves the caller little to wait for.
    static let runCount = 8
    /// How long the helper stays awake for the next row.
    static let spin: Duration = .milliseconds(2)

    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// The helper's work, set by a caller and cleared by the helper as it begins it (or by the caller, taking it back).
    private var work: (() -> Void)?
    /// Whether `work` is set, read without the lock by the helper while it waits awake.
    private let offered = Atomic<Bool>(false)
    /// The next run of the shared call, and the number of its runs.
    private var next = 0
    private var sharedRuns = 0
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

    /// The runs of `shap`'s trees: one for a small forest, else ``runCount`` of about as many leaves each.
    static func runs(_ shap: ShapTrees) -> [Range<Int>] {
        let trees = shap.treeCount
        let leaves = Int(shap.leafStarts[trees])
        guard leaves >= fewestLeaves, trees >= runCount else { return [0..<trees] }
        var bounds = [0]
        var tree = 0
        for run in 1..<runCount {
            while tree < trees, Int(shap.leafStarts[tree]) * runCount < leaves * run { tree += 1 }
            bounds.append(max(tree, bounds.last! + 1))
        }
        bounds.append(trees)
        return zip(bounds, bounds.dropFirst()).filter { $0 < $1 }.map { $0..<$1 }
    }

    /// Calls `walk` with every run of `runs` (its index and its trees), on this thread and the helper's at once when
    /// there are several and the helper is free; returns when every run is walked.
    func share(_ runs: [Range<Int>], _ walk: (Int, Range<Int>) -> Void) {
        guard runs.count > 1, claim(runs.count) else {
            for (index, trees) in runs.enumerated() { walk(index, trees) }
            return
        }
        let walkTheRest = {
            while let index = self.nextRun() { walk(index, runs[index]) }
        }
        withoutActuallyEscaping(
            walkTheRest,
            do: { walkTheRest in
                pthread_mutex_lock(lock)
                work = walkTheRest
                offered.store(true, ordering: .releasing)
                pthread_cond_broadcast(changed)
                pthread_mutex_unlock(lock)
                walkTheRest()
                pthread_mutex_lock(lock)
                if work != nil {
                    // The helper has not woken yet: nothing is left for it.
                    work = nil
                    offered.store(false, ordering: .relaxed)
                } else {
                    while !finished { pthread_cond_wait(changed, lock) }
                }
                taken = false
                pthread_mutex_unlock(lock)
            })
    }

    private func claim(_ runs: Int) -> Bool {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard running, !taken else { return false }
        taken = true
        next = 0
        sharedRuns = runs
        finished = false
        return true
    }

    private func nextRun() -> Int? {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard next < sharedRuns else { return nil }
        next += 1
        return next - 1
    }

    private func serve() {
        let clock = ContinuousClock()
        pthread_mutex_lock(lock)
        while true {
            if work == nil {
                pthread_mutex_unlock(lock)
                let awake = clock.now + Self.spin
                while !offered.load(ordering: .acquiring), clock.now < awake { sched_yield() }
                pthread_mutex_lock(lock)
            }
            while work == nil { pthread_cond_wait(changed, lock) }
            var shared = work
            work = nil
            offered.store(false, ordering: .relaxed)
            pthread_mutex_unlock(lock)
            shared?()
            // Released before the caller may return: its closure must not outlive the call.
            shared = nil
            pthread_mutex_lock(lock)
            finished = true
            pthread_cond_broadcast(changed)
        }
    }
}
