import Foundation

/// The federated model: softmax regression over 64 pixels and 10 classes, 650 parameters
/// (weights row-major 64×10, then biases), as `Guests/softmax.c` trains it. The coordinator
/// averages what nodes return (FedAvg) and measures accuracy on its held-out rows.
public struct SoftmaxModel: Sendable, Equatable {
    public static let parameterCount = LabeledImages.features * LabeledImages.classes + LabeledImages.classes
    /// What the guest returns: the sample count (u32), then the parameters (f32), little-endian.
    public static let resultBytes = 4 + 4 * parameterCount

    public var parameters: [Float]

    public init(parameters: [Float] = [Float](repeating: 0, count: SoftmaxModel.parameterCount)) {
        self.parameters = parameters
    }

    /// The parameters as the guest reads them (`ferry.input`).
    public var bytes: [UInt8] {
        self.parameters.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } }
    }

    /// A node's answer: the samples it trained on and its parameters.
    public static func decode(_ result: [UInt8]) throws -> (samples: Int, model: SoftmaxModel) {
        guard result.count == Self.resultBytes else {
            throw ProcessError("a trained model is \(Self.resultBytes) bytes, got \(result.count)")
        }
        func word(_ at: Int) -> UInt32 {
            UInt32(result[at]) | UInt32(result[at + 1]) << 8 | UInt32(result[at + 2]) << 16 | UInt32(result[at + 3])
                << 24
        }
        let parameters = (0..<Self.parameterCount).map { Float(bitPattern: word(4 + 4 * $0)) }
        guard parameters.allSatisfy(\.isFinite) else {
            throw ProcessError("a trained model has a value that is not finite")
        }
        return (Int(word(0)), SoftmaxModel(parameters: parameters))
    }

    /// FedAvg: the parameters averaged, each model weighted by the samples it trained on.
    public static func average(_ models: [(samples: Int, model: SoftmaxModel)]) -> SoftmaxModel? {
        let total = models.reduce(0) { $0 + $1.samples }
        guard total > 0 else { return nil }
        var sum = [Double](repeating: 0, count: Self.parameterCount)
        for (samples, model) in models {
            let weight = Double(samples) / Double(total)
            for index in sum.indices { sum[index] += weight * Double(model.parameters[index]) }
        }
        return SoftmaxModel(parameters: sum.map { Float($0) })
    }

    /// The class it predicts for a row's pixels.
    public func predict(_ pixels: ArraySlice<UInt8>) -> Int {
        let features = LabeledImages.features
        let classes = LabeledImages.classes
        var best = 0
        var bestScore = -Float.infinity
        for label in 0..<classes {
            var score = self.parameters[features * classes + label]
            for (feature, pixel) in pixels.enumerated() {
                score += Float(pixel) / 16 * self.parameters[feature * classes + label]
            }
            if score > bestScore {
                bestScore = score
                best = label
            }
        }
        return best
    }

    /// The share of `rows` of `data` it labels right, 0 to 1.
    public func accuracy(on data: LabeledImages, rows: [Int]) -> Double {
        guard !rows.isEmpty else { return 0 }
        let right = rows.filter { self.predict(data.pixels($0)) == data.label($0) }.count
        return Double(right) / Double(rows.count)
    }
}
