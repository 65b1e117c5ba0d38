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
        /// Clipping and noise on the updates (optional): nil averages them as they come.
        public var privacy: DifferentialPrivacy?

        public init(
            split: FederatedSplit,
            seed: UInt64,
            rounds: Int,
            localEpochs: Int,
            learningRate: Double,
            batch: Int = 32,
            privacy: DifferentialPrivacy? = nil
        ) {
            self.privacy = privacy
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
        /// Bytes that came back from each node, as its answer's frame came: its weights and sample
        /// count, and framing.
        public var bytesFromNodes: [String: Int]
        public var milliseconds: Double
        /// Nodes left out of this round's average, and why.
        public var failed: [String: String]?

        enum CodingKeys: String, CodingKey {
            case round, accuracy, bytes, failed
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
    /// Where a node listens now (nil: where it did at the start).
    let resolve: @Sendable (String) async throws -> ServiceEndpoint?
    /// How long a node may take to train and answer.
    static let roundTimeout: Duration = .seconds(120)

    public init(
        nodes: [Node],
        configuration: Configuration,
        data: LabeledImages,
        module: [UInt8],
        resolve: @escaping @Sendable (String) async throws -> ServiceEndpoint? = { _ in nil }
    ) {
        self.nodes = nodes
        self.configuration = configuration
        self.data = data
        self.module = module
        self.resolve = resolve
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
    ///
    /// A node that fails a round (it died, or answered an error) is left out of that round's
    /// average, as Flower's FedAvg accepts failures, and asked again the next round (found anew
    /// through `resolve`: a node started again may listen elsewhere). The run fails only when a
    /// round has no node left.
    @discardableResult
    public func train(test: [Int], onRound: (Round) -> Void) async throws -> SoftmaxModel {
        let digest = ModuleDigest(of: self.module).hex
        var clients = [NodeClient?](repeating: nil, count: self.nodes.count)
        defer { for client in clients { if let client { Task { await client.close() } } } }
        var model = SoftmaxModel()
        var noise = SeededRandom(seed: self.configuration.seed ^ 0x5EED_D1FF)
        for round in 1...self.configuration.rounds {
            let started = ContinuousClock.now
            let spec = self.spec(digest: digest, round: round, model: model)
            let outcomes = await withTaskGroup(of: (Int, Result<NodeRound, any Error>).self) { group in
                for (index, node) in self.nodes.enumerated() {
                    let client = clients[index]
                    group.addTask {
                        do {
                            var connected = client
                            if connected == nil { connected = try await self.connect(node) }
                            guard let connected else { throw ProcessError("no connection to \(node.name)") }
                            return (index, .success(try await self.trainOn(connected, spec)))
                        } catch {
                            if let client { await client.close() }
                            return (index, .failure(error))
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            var results: [(name: String, round: NodeRound)] = []
            var failed: [String: String] = [:]
            for (index, outcome) in outcomes {
                switch outcome {
                case .success(let nodeRound):
                    clients[index] = nodeRound.client
                    results.append((self.nodes[index].name, nodeRound))
                case .failure(let error):
                    clients[index] = nil
                    failed[self.nodes[index].name] = "\(error)"
                }
            }
            let aggregated =
                self.configuration.privacy.map {
                    $0.aggregate(model, results.map { ($0.round.samples, $0.round.model) }, random: &noise)
                }
                ?? SoftmaxModel.average(results.map { ($0.round.samples, $0.round.model) })
            guard let averaged = aggregated else {
                let reasons = failed.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
                throw ProcessError(
                    reasons.isEmpty
                        ? "no node trained on any rows: load their shards first"
                        : "round \(round) failed on every node (\(reasons.joined(separator: "; ")))"
                )
            }
            model = averaged
            onRound(
                Round(
                    round: round,
                    accuracy: model.accuracy(on: self.data, rows: test),
                    bytes: results.reduce(0) { $0 + $1.round.sent + $1.round.received },
                    bytesFromNodes: Dictionary(uniqueKeysWithValues: results.map { ($0.name, $0.round.received) }),
                    milliseconds: (ContinuousClock.now - started) / .milliseconds(1),
                    failed: failed.isEmpty ? nil : failed
                )
            )
        }
        return model
    }

    private func connect(_ node: Node) async throws -> NodeClient {
        try await NodeClient.connect(to: try await self.resolve(node.name) ?? node.endpoint, timeout: .seconds(2))
    }

    /// What one node did in a round.
    struct NodeRound: Sendable {
        var client: NodeClient
        var sent: Int
        var received: Int
        var samples: Int
        var model: SoftmaxModel
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

    /// One node's part of a round.
    private func trainOn(_ client: NodeClient, _ spec: ProcessSpec) async throws -> NodeRound {
        var request = NodeRequest.evaluate(spec, code: nil)
        var sent = Self.frameBytes(request)
        var (reply, received) = try await client.measuredRequest(request, timeout: Self.roundTimeout)
        if case .needCode = reply {
            request = .evaluate(spec, code: Data(self.module))
            sent += Self.frameBytes(request)
            (reply, received) = try await client.measuredRequest(request, timeout: Self.roundTimeout)
        }
        guard case .finished(let outcome) = reply, let hex = outcome.resultHex else {
            throw ProcessError("node at \(client.endpoint) answered \(reply) to a round of training")
        }
        guard let result = GuestValues.bytes(hex: hex) else {
            throw ProcessError("node at \(client.endpoint) answered a result that is not hex: \(hex.prefix(40))")
        }
        let (samples, model) = try SoftmaxModel.decode(result)
        return NodeRound(client: client, sent: sent, received: received, samples: samples, model: model)
    }

    /// A request's size on the wire: its frame header and JSON payload (as `NodeRequestMessage`
    /// encodes it).
    static func frameBytes<Message: Encodable>(_ message: Message) -> Int {
        FrameHeader.size + ((try? JSONEncoder().encode(message).count) ?? 0)
    }

}
