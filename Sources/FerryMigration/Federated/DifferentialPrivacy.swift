/// Optional differential privacy for FedAvg, as Flower's `DifferentialPrivacyServerSideFixedClipping`
/// does it (Geyer et al. 2017; McMahan et al. 2018): each node's update (its model less the one it
/// was sent) is clipped to an L2 norm of at most `clip`, the clipped updates are averaged as FedAvg
/// averages (weighted by samples), and
/// Gaussian noise of standard deviation `noise · clip / nodes` is added to the average. It bounds
/// what the published model says of any one node's data; the coordinator still sees each update.
public struct DifferentialPrivacy: Sendable, Equatable {
    /// The largest L2 norm an update keeps.
    public var clip: Double
    /// The noise multiplier (σ = noise · clip / nodes).
    public var noise: Double

    public init(clip: Double, noise: Double) {
        self.clip = clip
        self.noise = noise
    }

    /// The next global model: `global` plus the noised average of the clipped updates.
    public func aggregate(
        _ global: SoftmaxModel,
        _ trained: [(samples: Int, model: SoftmaxModel)],
        random: inout SeededRandom
    ) -> SoftmaxModel? {
        let total = trained.reduce(0) { $0 + $1.samples }
        guard total > 0 else { return nil }
        var sum = [Double](repeating: 0, count: SoftmaxModel.parameterCount)
        for (samples, model) in trained {
            let update = zip(model.parameters, global.parameters).map { Double($0) - Double($1) }
            let norm = update.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let scale = (norm > self.clip ? self.clip / norm : 1) * Double(samples) / Double(total)
            for index in sum.indices { sum[index] += update[index] * scale }
        }
        let sigma = self.noise * self.clip / Double(trained.count)
        return SoftmaxModel(
            parameters: sum.indices.map { index in
                global.parameters[index] + Float(sum[index] + sigma * random.normal())
            }
        )
    }
}
