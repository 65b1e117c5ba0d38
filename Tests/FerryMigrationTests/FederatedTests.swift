import Foundation
import Testing

@testable import FerryMigration

/// Federated learning's parts without nodes: the splits of the digits data set, FedAvg, and the
/// model's bytes as the guest reads and returns them.
@Suite struct FederatedTests {
    static let digits: LabeledImages = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Examples/digits/digits.bin").path
        return try! LabeledImages(path: path)
    }()

    @Test func theShippedDataSetIsScikitLearnsDigits() {
        #expect(Self.digits.count == 1797)
        let perClass = Dictionary(grouping: 0..<Self.digits.count, by: Self.digits.label).mapValues(\.count)
        #expect(perClass.count == 10 && perClass.values.allSatisfy { (174...183).contains($0) }, "\(perClass)")
    }

    @Test(arguments: ["iid", "dirichlet:0.5", "dirichlet:0.1", "classes:2"])
    func everyTrainingRowGoesToExactlyOneNodeAndNoneOfTheTestRows(split: String) throws {
        let (test, shards) = try FederatedSplit(parsing: split).split(Self.digits, nodes: 3, seed: 7)
        let all = shards.flatMap { $0 }
        #expect(test.count == 1797 / 5)
        #expect(Set(all).count == all.count && all.count + test.count == 1797)
        #expect(Set(all).isDisjoint(with: test))
        #expect(try FederatedSplit(parsing: split).split(Self.digits, nodes: 3, seed: 7).shards == shards, "seeded")
    }

    @Test func nonIIDSplitsSkewTheLabelsAndIIDDoesNot() throws {
        func labelsSeen(_ split: String) throws -> [Int] {
            try FederatedSplit(parsing: split).split(Self.digits, nodes: 3, seed: 7).shards.map { shard in
                // Classes with at least 5% of the node's rows.
                let counts = Dictionary(grouping: shard, by: Self.digits.label).mapValues(\.count)
                return counts.values.filter { $0 * 20 >= shard.count }.count
            }
        }
        #expect(try labelsSeen("iid").allSatisfy { $0 == 10 })
        // Two label-sorted pieces each: a piece spans 1 to 3 labels when 6 pieces cover 10.
        let twoClasses = try labelsSeen("classes:2")
        #expect(twoClasses.allSatisfy { $0 <= 6 }, "\(twoClasses)")
        #expect(try labelsSeen("dirichlet:0.1").reduce(0, +) < 25)
        let sizes = try FederatedSplit(parsing: "iid").split(Self.digits, nodes: 3, seed: 7).shards.map(\.count)
        #expect(sizes.max()! - sizes.min()! <= 1)
    }

    @Test func badSplitsAreRefusedWithTheForm() {
        for text in ["dirichlet:0", "dirichlet", "classes:11", "shuffled"] {
            #expect(throws: ProcessError.self) { try FederatedSplit(parsing: text) }
        }
    }

    @Test func fedAvgWeighsEachModelByItsSamples() throws {
        let ones = SoftmaxModel(parameters: [Float](repeating: 1, count: SoftmaxModel.parameterCount))
        let fours = SoftmaxModel(parameters: [Float](repeating: 4, count: SoftmaxModel.parameterCount))
        let average = try #require(SoftmaxModel.average([(samples: 300, model: ones), (samples: 100, model: fours)]))
        #expect(average.parameters.allSatisfy { abs($0 - 1.75) < 1e-6 })
        #expect(SoftmaxModel.average([(samples: 0, model: ones)]) == nil)
    }

    @Test func differentialPrivacyClipsEachUpdateAndWithoutNoiseOrClippingIsFedAvg() throws {
        let global = SoftmaxModel()
        let small = SoftmaxModel(parameters: [Float](repeating: 0.01, count: SoftmaxModel.parameterCount))
        let huge = SoftmaxModel(parameters: [Float](repeating: 100, count: SoftmaxModel.parameterCount))
        var random = SeededRandom(seed: 1)
        let loose = try #require(
            DifferentialPrivacy(clip: 1e9, noise: 0).aggregate(global, [(100, small), (300, huge)], random: &random)
        )
        let plain = try #require(SoftmaxModel.average([(100, small), (300, huge)]))
        #expect(zip(loose.parameters, plain.parameters).allSatisfy { abs($0 - $1) < 1e-3 })
        let clipped = try #require(
            DifferentialPrivacy(clip: 1, noise: 0).aggregate(global, [(1, huge)], random: &random)
        )
        let norm = clipped.parameters.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
        #expect(abs(norm - 1) < 1e-4, "one node's update moves the model by at most the clip: \(norm)")
        let noised = try #require(
            DifferentialPrivacy(clip: 1, noise: 1).aggregate(global, [(1, global)], random: &random)
        )
        let spread = noised.parameters.reduce(0) { $0 + Double($1) * Double($1) } / Double(SoftmaxModel.parameterCount)
        #expect(abs(spread.squareRoot() - 1) < 0.15, "noise of sigma = noise x clip / nodes: \(spread.squareRoot())")
    }

    @Test func aModelReadsBackFromTheGuestsAnswer() throws {
        let model = SoftmaxModel(parameters: (0..<SoftmaxModel.parameterCount).map { Float($0) / 7 })
        let answer: [UInt8] = [44, 1, 0, 0] + model.bytes
        let (samples, decoded) = try SoftmaxModel.decode(answer)
        #expect(samples == 300 && decoded == model)
        #expect(throws: ProcessError.self) { try SoftmaxModel.decode(Array(answer.dropLast())) }
    }

    @Test func aDataSetThatIsNotRowsOfDigitsIsRefused() {
        #expect(throws: ProcessError.self) { try LabeledImages(bytes: [UInt8](repeating: 0, count: 64)) }
        var bad = [UInt8](repeating: 0, count: 65)
        bad[64] = 10
        #expect(throws: ProcessError.self) { try LabeledImages(bytes: bad) }
    }
}
