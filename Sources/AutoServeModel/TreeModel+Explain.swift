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
    /// trees' order; by quadrature (``QuadratureShapWalk``), or `exactly` as LightGBM computes it (``ShapWalk``).
    func contributions(_ features: [Double], exactly: Bool = false) -> [[Double]] {
        guard let tables = shapTables else { return [] }
        let shap = lanes.shap
        let width = lanes.features + 1
        let depth = shap.depth
        var output = [Double](repeating: 0, count: treesPerIteration * width)
        let scratch = ShapScratch<Double>(
            lanes: lanes, pathCount: exactly ? ShapWalk<Double>.pathCapacity(depth: depth) : 0, numberCount: QuadratureShapWalk.scratchCount(depth: depth))
        defer { scratch.deallocate() }
        features.withUnsafeBufferPointer { lanes.bins($0, into: scratch.bins, special: special) }
        quadrature.nodes.withUnsafeBufferPointer { nodes in
            quadrature.weights.withUnsafeBufferPointer { weights in
                output.withUnsafeMutableBufferPointer { output in
                    for tree in 0..<shap.treeCount {
                        let phi = output.baseAddress! + (tree % treesPerIteration) * width
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
        return (0..<treesPerIteration).map { Array(output[($0 * width)..<(($0 + 1) * width)]) }
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
    /// then added to its class's contributions; the base margin added to the expected value at the end.
    func contributions(_ features: [Double]) -> [[Double]] {
        guard let tables = shapTables else { return [] }
        let shap = lanes.shap
        let width = lanes.features + 1
        var output = [Float](repeating: 0, count: base.count * width)
        let scratch = ShapScratch<Float>(lanes: lanes, pathCount: ShapWalk<Float>.pathCapacity(depth: shap.depth), numberCount: width)
        defer { scratch.deallocate() }
        features.map { Double(Float($0)) }.withUnsafeBufferPointer { lanes.bins($0, into: scratch.bins, special: categorical) }
        let phi = scratch.numbers
        let walk = ShapWalk(tables, bins: scratch.bins, phi: phi, skipsZeroFraction: true)
        for tree in 0..<shap.treeCount {
            phi.update(repeating: 0, count: width)
            phi[width - 1] += means[tree]
            walk.walk(shap.roots[tree], depth: 0, parent: scratch.path, parentZero: 1, parentOne: 1, parentFeature: -1)
            let start = Int(groups[tree]) * width
            for column in 0..<width { output[start + column] += phi[column] }
        }
        for group in base.indices { output[group * width + width - 1] += base[group] }
        return base.indices.map { group in output[(group * width)..<((group + 1) * width)].map(Double.init) }
    }
}
