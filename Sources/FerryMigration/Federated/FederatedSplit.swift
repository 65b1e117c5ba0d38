import Foundation

/// How a data set is spread over the nodes that hold it: IID (shuffled, equal shares), by a
/// Dirichlet distribution over the labels (each class's rows spread by proportions drawn from
/// Dir(α): the smaller α, the more each node sees only a few classes), or `K` classes per node.
public enum FederatedSplit: Sendable, Equatable, CustomStringConvertible {
    case iid
    case dirichlet(Double)
    case classes(Int)

    /// `iid`, `dirichlet:ALPHA` or `classes:K`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        switch (parts.first, parts.count) {
        case ("iid", 1): self = .iid
        case ("dirichlet", 2):
            guard let alpha = Double(parts[1]), alpha > 0 else {
                throw ProcessError("dirichlet:ALPHA takes an α above 0, got '\(parts[1])'")
            }
            self = .dirichlet(alpha)
        case ("classes", 2):
            guard let count = Int(parts[1]), (1...LabeledImages.classes).contains(count) else {
                throw ProcessError("classes:K takes 1 to \(LabeledImages.classes), got '\(parts[1])'")
            }
            self = .classes(count)
        default:
            throw ProcessError("a split is iid, dirichlet:ALPHA or classes:K, got '\(text)'")
        }
    }

    public var description: String {
        switch self {
        case .iid: "iid"
        case .dirichlet(let alpha): "dirichlet:\(alpha)"
        case .classes(let count): "classes:\(count)"
        }
    }

    /// The held-out test rows (a fifth, drawn by `seed`) and the training rows of each of `nodes`.
    public func split(_ data: LabeledImages, nodes: Int, seed: UInt64) -> (test: [Int], shards: [[Int]]) {
        var random = SeededRandom(seed: seed)
        var rows = Array(0..<data.count)
        rows.shuffle(using: &random)
        let test = Array(rows.prefix(data.count / 5)).sorted()
        let train = Array(rows.dropFirst(data.count / 5))
        var shards = [[Int]](repeating: [], count: nodes)
        switch self {
        case .iid:
            for (index, row) in train.enumerated() { shards[index % nodes].append(row) }
        case .dirichlet(let alpha):
            for label in 0..<LabeledImages.classes {
                let ofLabel = train.filter { data.label($0) == label }
                let weights = (0..<nodes).map { _ in random.gamma(alpha) }
                let total = weights.reduce(0, +)
                var start = 0
                for node in 0..<nodes {
                    let end =
                        node == nodes - 1
                        ? ofLabel.count
                        : min(ofLabel.count, start + Int((weights[node] / total * Double(ofLabel.count)).rounded()))
                    shards[node] += ofLabel[start..<end]
                    start = end
                }
            }
        case .classes(let count):
            // McMahan et al.'s pathological split: the rows sorted by label, cut into K pieces per
            // node, and K pieces dealt to each at random, so each node sees about K classes.
            let sorted = train.sorted { (data.label($0), $0) < (data.label($1), $1) }
            var pieces = Array(0..<(nodes * count))
            pieces.shuffle(using: &random)
            for (index, piece) in pieces.enumerated() {
                let start = piece * sorted.count / (nodes * count)
                let end = (piece + 1) * sorted.count / (nodes * count)
                shards[index / count] += sorted[start..<end]
            }
        }
        return (test, shards.map { $0.sorted() })
    }
}

/// A small seeded generator (SplitMix64), so that a split is the same for the same seed
/// everywhere.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { self.state = seed }

    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in (0, 1).
    mutating func unit() -> Double { (Double(self.next() >> 11) + 0.5) / Double(1 << 53) }

    /// A standard normal value (Box–Muller).
    mutating func normal() -> Double {
        sqrt(-2 * log(self.unit())) * cos(2 * Double.pi * self.unit())
    }

    /// A Gamma(shape, 1) value: Marsaglia and Tsang's method, boosted for shapes under 1.
    mutating func gamma(_ shape: Double) -> Double {
        if shape < 1 { return self.gamma(shape + 1) * pow(self.unit(), 1 / shape) }
        let d = shape - 1.0 / 3
        let c = 1 / sqrt(9 * d)
        while true {
            let x = self.normal()
            let v = pow(1 + c * x, 3)
            guard v > 0 else { continue }
            if log(self.unit()) < 0.5 * x * x + d - d * v + d * log(v) { return d * v }
        }
    }
}
