import FerryPosix
import FerryTestSupport
import Foundation
import Testing

/// `ferry learn` as a user runs it, on three nodes that are processes of their own: the model
/// goes to each node's private shard, and only weights come back.
@Suite(.serialized, .onThreadsOfTheirOwn) struct FederatedLearningTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Where a CPU quota can be set, the three training nodes take 0.9 CPUs in all, so that the
    /// timing-sensitive suites running beside these keep the rest.
    static let quota = getuid() == 0 && BalancingTests.cgroupV1 ? ["--cpus", "0.3"] : []

    @Test func theModelLearnsTheDigitsAndOnlyWeightsLeaveTheDataNodes() throws {
        let cluster = try TestCluster()
        for node in ["n1", "n2", "n3"] { try cluster.start(node, extra: Self.quota) }
        let result = try cluster.run(
            "learn",
            [
                "--nodes", "n1,n2,n3", "--split", "iid", "--seed", "3", "--rounds", "2", "--local-epochs", "1",
                "--lr", "0.5", "--key", cluster.key, "--json",
                "--data", Self.examples.appendingPathComponent("Examples/digits/digits.bin").path,
                "--model", TestCluster.guest("softmax"),
            ],
            timeout: 300
        )
        try #require(result.status == 0, "\(result.error)\n\(cluster.log("n1"))")
        let lines = result.output.split(separator: "\n").map {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? [:]
        }
        try #require(lines.count == 3, "\(result.output)")
        for (index, round) in lines.dropLast().enumerated() {
            #expect(round["round"] as? Int == index + 1)
            let fromNodes = try #require(round["bytes_from_nodes"] as? [String: Int])
            // Each node answers the 650 weights and its sample count (2,604 bytes, as hex in the
            // JSON reply) and framing: nothing near its shard of about 480 rows of 65 bytes.
            for (node, bytes) in fromNodes {
                #expect((2 * 2604)..<(2 * 2604 + 256) ~= bytes, "\(node) sent \(bytes) bytes in round \(index + 1)")
            }
            #expect(fromNodes.keys.sorted() == ["n1", "n2", "n3"])
        }
        let final = try #require(lines.last?["final_accuracy"] as? Double)
        #expect(final >= 0.85, "after 2 rounds of 1 epoch on IID shards: \(result.output)")
        let first = try #require(lines.first?["accuracy"] as? Double)
        #expect(final >= first, "\(result.output)")

        // The model guest cannot reach the network: it imports only its input and its node's data.
        let inspected = try cluster.ferry(["guest", "inspect", TestCluster.guest("softmax")])
        let imports = inspected.output.split(separator: "\n").filter { $0.hasPrefix("import") }
        #expect(
            imports.map { $0.split(separator: " ").last.map(String.init) ?? "" }.sorted() == [
                "(function)", "(function)",
            ]
        )
        #expect(
            imports.count == 2 && imports.allSatisfy { $0.contains("ferry.input") || $0.contains("ferry.data_read") }
        )
    }

    /// A data node killed in the middle of a run is left out of the rounds after, as Flower's
    /// FedAvg accepts failures, and the run ends with the others.
    @Test func aDataNodeKilledMidRunIsLeftOutAndTheRunGoesOn() throws {
        let cluster = try TestCluster()
        for node in ["n1", "n2", "n3"] { try cluster.start(node, extra: Self.quota) }
        let output = Pipe()
        let discarded = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(discarded) }
        let learn = try ChildProcess(
            try FerryProcess.executable().path,
            [
                "learn", "--endpoints", cluster.daemon.endpoint, "--nodes", "n1,n2,n3", "--rounds", "4", "--key",
                cluster.key, "--json", "--data",
                Self.examples.appendingPathComponent("Examples/digits/digits.bin").path,
                "--model", TestCluster.guest("softmax"),
            ],
            environment: FerryProcess.environment,
            standardOutput: output.fileHandleForWriting.fileDescriptor,
            standardError: discarded
        )
        try? output.fileHandleForWriting.close()
        var text = Data()
        // After the first round's line, n2 dies.
        while !text.contains(10) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text.append(chunk)
        }
        cluster.node("n2").kill9()
        text.append(output.fileHandleForReading.readDataToEndOfFile())
        learn.waitUntilExit()
        try #require(learn.terminationStatus == 0, "\(String(decoding: text, as: UTF8.self))")
        let lines = String(decoding: text, as: UTF8.self).split(separator: "\n").map {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? [:]
        }
        try #require(lines.count == 5, "\(lines)")
        let last = try #require(lines[3]["bytes_from_nodes"] as? [String: Int])
        #expect(last.keys.sorted() == ["n1", "n3"], "the last round averaged the nodes left: \(lines[3])")
        #expect((lines[3]["failed"] as? [String: String])?["n2"] != nil, "and says which failed: \(lines[3])")
        #expect((lines[4]["final_accuracy"] as? Double ?? 0) > 0.8, "\(lines[4])")
    }

    @Test func aDataSetWithABadNameOrNodeIsRefused() throws {
        let cluster = try TestCluster()
        try cluster.start("n1")
        let file = Self.examples.appendingPathComponent("Examples/digits/digits.bin").path
        let badName = try cluster.ferry([
            "data", "load", "--endpoints", cluster.daemon.endpoint, "--node", "n1", "--name", "../x", file,
        ])
        #expect(badName.status != 0 && badName.error.contains("not a data set name"), "\(badName.error)")
        let badNode = try cluster.ferry([
            "data", "load", "--endpoints", cluster.daemon.endpoint, "--node", "nowhere", file,
        ])
        #expect(badNode.status != 0 && badNode.error.contains("no node named 'nowhere'"), "\(badNode.error)")
        let loaded = try cluster.ferry(["data", "load", "--endpoints", cluster.daemon.endpoint, "--node", "n1", file])
        #expect(loaded.status == 0 && loaded.output.contains("holds data set 'digits' (116805 bytes)"), "\(loaded)")
    }
}
