import FerryEndpoints
import FerryGuest
import FerryWire
import Foundation

/// Federated learning, the seed's second reason to move code (privacy: bring the code to the
/// data): each node holds a private shard of a data set; each round the coordinator sends the
/// model guest (`Guests/softmax.c`) with the current weights to every node by remote evaluation,
/// each node trains it on its shard and answers only the new weights and its sample count, and
/// the coordinator averages them weighted by samples (FedAvg, McMahan et al. 2017) and measures
/// accuracy on rows it held out. The module crosses to a node once (nodes keep code by digest);
/// after that a round moves weights only.
public struct FederatedLearning: Sendable {
    public struct Node: Sendable {
        public var name: String
        public var endpoint: ServiceEndpoint

        public init(name: String, endpoint: ServiceEndpoint) {
            self.name = name
            self.endpoint = endpoint
        }
    }

    public struct Configuration: Sendable {
        public var split: FederatedSplit
        public var seed: UInt64
        public var rounds: Int
        public var localEpochs: Int
        public var learningRate: Double
        public var batch: Int

        public init(
            split: FederatedSplit,
            seed: UInt64,
            rounds: Int,
            localEpochs: Int,
            learningRate: Double,
            batch: Int = 32
        ) {
            self.split = split
            self.seed = seed
            self.rounds = rounds
            self.localEpochs = localEpochs
            self.learningRate = learningRate
            self.batch = batch
        }
    }

    /// One round, as `ferry learn` prints it.
    public struct Round: Codable, Sendable {
        public var round: Int
        /// On the coordinator's held-out rows, 0 to 1.
        public var accuracy: Double
        /// Bytes of node-protocol frames in both directions: code (the first time), weights out,
        /// weights back.
        public var bytes: Int
        /// Bytes that came back from each node: its weights and sample count, and framing.
        public var bytesFromNodes: [String: Int]
        public var milliseconds: Double

        enum CodingKeys: String, CodingKey {
            case round, accuracy, bytes
            case bytesFromNodes = "bytes_from_nodes"
            case milliseconds = "ms"
        }
    }

    /// The name a node keeps its shard under, which the guest reads.
    public static let dataSetName = "digits"

    public let nodes: [Node]
    public let configuration: Configuration
    public let data: LabeledImages
    /// The model guest, signed for the nodes.
    public let module: [UInt8]

    public init(nodes: [Node], configuration: Configuration, data: LabeledImages, module: [UInt8]) {
        self.nodes = nodes
        self.configuration = configuration
        self.data = data
        self.module = module
    }

    /// Splits the data, places each node's shard on it (`NodeRequest.loadData`), and returns the
    /// held-out rows and each node's row count.
    public func placeShards() async throws -> (test: [Int], rows: [String: Int]) {
        let (test, shards) = self.configuration.split.split(
            self.data,
            nodes: self.nodes.count,
            seed: self.configuration.seed
        )
        var rows: [String: Int] = [:]
        for (node, shard) in zip(self.nodes, shards) {
            let client = try await NodeClient.connect(to: node.endpoint)
            defer { Task { await client.close() } }
            let bytes = Data(self.data.subset(shard).bytes)
            _ = try await client.request(.loadData(name: Self.dataSetName, bytes: bytes))
            rows[node.name] = shard.count
        }
        return (test, rows)
    }

    /// Runs the rounds from a zero model; `onRound` hears each as it ends. The final model.
    @discardableResult
    public func train(test: [Int], onRound: (Round) -> Void) async throws -> SoftmaxModel {
        let digest = ModuleDigest(of: self.module).hex
        var clients: [NodeClient] = []
        defer { for client in clients { Task { await client.close() } } }
        for node in self.nodes { clients.append(try await NodeClient.connect(to: node.endpoint)) }
        var model = SoftmaxModel()
        for round in 1...self.configuration.rounds {
            let started = ContinuousClock.now
            let spec = self.spec(digest: digest, round: round, model: model)
            let results = try await withThrowingTaskGroup(of: (String, Int, Int, Int, SoftmaxModel).self) { group in
                for (node, client) in zip(self.nodes, clients) {
                    group.addTask {
                        let (sent, received, samples, trained) = try await self.trainOn(client, spec)
                        return (node.name, sent, received, samples, trained)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            guard let averaged = SoftmaxModel.average(results.map { ($0.3, $0.4) }) else {
                throw ProcessError("no node trained on any rows: load their shards first")
            }
            model = averaged
            onRound(
                Round(
                    round: round,
                    accuracy: model.accuracy(on: self.data, rows: test),
                    bytes: results.reduce(0) { $0 + $1.1 + $1.2 },
                    bytesFromNodes: Dictionary(uniqueKeysWithValues: results.map { ($0.0, $0.2) }),
                    milliseconds: (ContinuousClock.now - started) / .milliseconds(1)
                )
            )
        }
        return model
    }

    private func spec(digest: String, round: Int, model: SoftmaxModel) -> ProcessSpec {
        var spec = ProcessSpec(
            name: "learn",
            digest: digest,
            export: "train",
            arguments: [
                String(self.configuration.localEpochs), String(Int((self.configuration.learningRate * 1e6).rounded())),
                String(self.configuration.batch),
                String(Int(truncatingIfNeeded: self.configuration.seed &* 1000 &+ UInt64(round)) & 0x7fff_ffff),
            ],
            resultBytes: SoftmaxModel.resultBytes
        )
        spec.input = Data(model.bytes)
        return spec
    }

    /// One node's part of a round: bytes sent and received, its sample count and its model.
    private func trainOn(_ client: NodeClient, _ spec: ProcessSpec) async throws -> (Int, Int, Int, SoftmaxModel) {
        var request = NodeRequest.evaluate(spec, code: nil)
        var sent = Self.frameBytes(request)
        var reply = try await client.request(request, timeout: .seconds(600))
        if case .needCode = reply {
            request = .evaluate(spec, code: Data(self.module))
            sent += Self.frameBytes(request)
            reply = try await client.request(request, timeout: .seconds(600))
        }
        guard case .finished(let outcome) = reply, let hex = outcome.resultHex else {
            throw ProcessError("node at \(client.endpoint) answered \(reply) to a round of training")
        }
        let (samples, model) = try SoftmaxModel.decode(try Self.bytes(hex: hex))
        return (sent, Self.frameBytes(reply), samples, model)
    }

    /// A node-protocol message's size on the wire: its frame header and JSON payload.
    static func frameBytes<Message: Encodable>(_ message: Message) -> Int {
        FrameHeader.size + ((try? JSONEncoder().encode(message).count) ?? 0)
    }

    static func bytes(hex: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.utf8.count / 2)
        var high: UInt8?
        for character in hex.utf8 {
            guard let nibble = UInt8(String(UnicodeScalar(character)), radix: 16) else {
                throw ProcessError("a result that is not hex: \(hex.prefix(40))")
            }
            if let first = high {
                bytes.append(first << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return bytes
    }
}
