import ArgumentParser
import FerryGuest
import FerryMigration
import FerryNode
import FerryWire
import Foundation

/// `ferry data load`: give a node a private data set for its guests.
struct DataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Node-local data sets, read by guests through ferry.data_read and never sent on by the node.",
        subcommands: [Load.self]
    )

    struct Load: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "load",
            abstract: "Store FILE on a node as its data set NAME (replacing one of that name)."
        )

        @OptionGroup var cluster: DaemonOption

        @Option(help: "The node to give it to.")
        var node: String

        @Option(help: "The data set's name, as guests ask for it.")
        var name = FederatedLearning.dataSetName

        @Argument(help: "The file.")
        var file: String

        func run() async throws {
            guard let bytes = FileManager.default.contents(atPath: self.file) else {
                throw CommandFailure("cannot read \(self.file)")
            }
            let lookup = self.cluster.lookup
            let client = try await lookup.connect(try await lookup.node(self.node))
            defer { Task { await client.close() } }
            guard case .dataLoaded(let size) = try await request(client, .loadData(name: self.name, bytes: bytes))
            else {
                throw CommandFailure("node \(self.node) did not store the data set")
            }
            printLine("node \(self.node) holds data set '\(self.name)' (\(size) bytes)")
        }
    }
}

/// `ferry learn`: federated learning over the cluster's nodes.
struct LearnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learn",
        abstract: "Federated learning: the model goes to the nodes' data, only weights come back (FedAvg).",
        discussion: """
            Splits the digits data set (Examples/digits/digits.bin) over --nodes and places each \
            node's shard on it, holding a fifth out for testing; then each round sends the model \
            guest (Guests/softmax.wasm) with the current weights to every node by remote \
            evaluation, and averages the weights they send back, weighted by their samples. Prints \
            one line per round (round, test accuracy, bytes moved) and a summary; with --json one \
            JSON object per round and a last one with final_accuracy.
            """
    )

    @OptionGroup var cluster: DaemonOption

    @Option(help: "The nodes that hold the data, comma-separated.")
    var nodes: String

    @Option(help: "iid, dirichlet:ALPHA or classes:K.")
    var split = "iid"

    @Option(help: "The seed of the split and of the nodes' shuffles.")
    var seed: UInt64 = 1

    @Option(help: "Rounds of FedAvg.")
    var rounds = 10

    @Option(help: "Passes over its shard each node makes per round.")
    var localEpochs = 1

    @Option(help: "SGD's learning rate.")
    var lr = 0.5

    @Option(help: "Rows per mini-batch.")
    var batch = 32

    @Option(help: "The data set (rows of 64 pixels and a label).")
    var data = "Examples/digits/digits.bin"

    @Option(help: "The model guest.")
    var model = "Guests/softmax.wasm"

    @Option(help: "Sign the model with this key for the nodes (default: the cluster key of 'ferry up', if there).")
    var key: String?

    @Option(help: "Optional differential privacy: clip each node's update to this L2 norm (with --dp-noise).")
    var dpClip: Double?

    @Option(help: "Optional differential privacy: the noise multiplier (Gaussian, sigma = it x clip / nodes).")
    var dpNoise: Double?

    @Flag(help: "One JSON object per line.")
    var json = false

    func validate() throws {
        _ = try FederatedSplit(parsing: self.split)
        guard (1...10_000).contains(self.rounds) else { throw ValidationError("--rounds takes 1 to 10000") }
        guard (1...1000).contains(self.localEpochs) else { throw ValidationError("--local-epochs takes 1 to 1000") }
        guard self.lr > 0, self.lr <= 100 else { throw ValidationError("--lr takes a rate above 0, at most 100") }
        guard (1...4096).contains(self.batch) else { throw ValidationError("--batch takes 1 to 4096") }
        guard (self.dpClip == nil) == (self.dpNoise == nil) else {
            throw ValidationError("differential privacy takes both --dp-clip NORM and --dp-noise MULTIPLIER")
        }
        if let clip = self.dpClip, let noise = self.dpNoise, clip <= 0 || noise < 0 {
            throw ValidationError("--dp-clip takes a norm above 0 and --dp-noise a multiplier of 0 or more")
        }
        guard !self.nodeNames.isEmpty else { throw ValidationError("--nodes takes one or more node names, a,b,c") }
    }

    var nodeNames: [String] { self.nodes.split(separator: ",").map(String.init).filter { !$0.isEmpty } }

    func run() async throws {
        let data = try LabeledImages(path: self.data)
        var (module, _) = try readModule(self.model)
        let defaultKey = NodeProcesses.clusterKeyFile(dataDirectory: Node.defaultDataDirectory)
        if let key = self.key ?? (FileManager.default.fileExists(atPath: defaultKey) ? defaultKey : nil) {
            module = try ModuleSignature.sign(module, with: try SigningKey(path: key))
        }
        let lookup = self.cluster.lookup
        var nodes: [FederatedLearning.Node] = []
        for name in self.nodeNames { nodes.append(.init(name: name, endpoint: try await lookup.node(name))) }
        let learning = FederatedLearning(
            nodes: nodes,
            configuration: .init(
                split: try FederatedSplit(parsing: self.split),
                seed: self.seed,
                rounds: self.rounds,
                localEpochs: self.localEpochs,
                learningRate: self.lr,
                batch: self.batch,
                privacy: self.dpClip.flatMap { clip in self.dpNoise.map { DifferentialPrivacy(clip: clip, noise: $0) } }
            ),
            data: data,
            module: module,
            resolve: { name in try await lookup.node(name) }
        )
        do {
            try await self.learn(learning)
        } catch let error as ErrorMessage {
            throw CommandFailure(error.message)
        }
    }

    private func learn(_ learning: FederatedLearning) async throws {
        let (test, rows) = try await learning.placeShards()
        if !self.json {
            let shards = self.nodeNames.map { "\($0) \(rows[$0] ?? 0)" }.joined(separator: ", ")
            printLine("shards (\(self.split), seed \(self.seed)): \(shards) rows; \(test.count) held out for testing")
        }
        var total = 0
        var milliseconds = 0.0
        var last = 0.0
        try await learning.train(test: test) { round in
            total += round.bytes
            milliseconds += round.milliseconds
            last = round.accuracy
            for (node, reason) in (round.failed ?? [:]).sorted(by: { $0.key < $1.key }) {
                printError("node \(node) failed round \(round.round), left out of its average: \(reason)")
            }
            if self.json {
                printLine((try? jsonString(round)) ?? "")
            } else {
                printLine(
                    String(
                        format: "round %d  accuracy %.4f  bytes %d  (%.0f ms)",
                        round.round,
                        round.accuracy,
                        round.bytes,
                        round.milliseconds
                    )
                )
            }
        }
        let perRound = milliseconds / Double(self.rounds)
        if self.json {
            printLine(
                try jsonString(
                    Summary(finalAccuracy: last, rounds: self.rounds, bytes: total, millisecondsPerRound: perRound)
                )
            )
        } else {
            printLine(
                String(
                    format: "final accuracy %.4f after %d rounds; %d bytes moved in all, %.0f ms per round",
                    last,
                    self.rounds,
                    total,
                    perRound
                )
            )
        }
    }

    struct Summary: Encodable {
        var finalAccuracy: Double
        var rounds: Int
        var bytes: Int
        var millisecondsPerRound: Double

        enum CodingKeys: String, CodingKey {
            case rounds, bytes
            case finalAccuracy = "final_accuracy"
            case millisecondsPerRound = "ms_per_round"
        }
    }
}
