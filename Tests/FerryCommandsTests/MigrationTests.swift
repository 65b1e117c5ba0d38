import FerryGuest
import FerryTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Processes that move between nodes that are processes of their own, driven by the commands a
/// user types: `ferry node`, `spawn`, `ps`, `migrate`, `wait`, `logs`, `eval`.
@Suite(.serialized, .onThreadsOfTheirOwn) struct MigrationTests {
    /// SHA-256 of the 256 KiB the sha256 guests generate (byte i is (i * 31 + (i >> 11)) & 255), as
    /// sha256sum computes it: what every run must end with, moved or not.
    static let bytes = "262144"
    static let digest = "17bde92e59474bd1b8591ce852e432a4741a833b82d8fc42747fce5d0a619b62"

    /// Spawns the gated SHA-256 guest (a plain module, made movable by the node) as `name` on
    /// `node`, and waits until it stands at its gate, half-way through: moved from there, it is
    /// surely moved while running, however slow the machine. ``openGate(_:in:)`` lets it finish.
    static func spawnGated(_ cluster: TestCluster, _ name: String, on node: String) throws {
        let gate = "\(cluster.directory)/gate-\(name)"
        try FileManager.default.createDirectory(atPath: gate, withIntermediateDirectories: true)
        let spawned = try cluster.run(
            "spawn",
            [
                "--node", node, try cluster.signed("gated"), "--name", name, "--dir", gate, "--invoke", "hash",
                "--result-bytes", "32", Self.bytes,
            ]
        )
        try #require(spawned.status == 0, "spawn failed: \(spawned.error)")
        #expect(spawned.output == "\(name)\n", "spawn prints the process's name")
        for _ in 0..<600 {
            if try cluster.run("logs", [name]).output.contains("waiting at the gate") { return }
            usleep(100_000)
        }
        Issue.record("\(name) never reached its gate: \(cluster.log(node))")
    }

    static func openGate(_ name: String, in cluster: TestCluster) {
        FileManager.default.createFile(atPath: "\(cluster.directory)/gate-\(name)/open", contents: nil)
    }

    @Test(arguments: ["strong", "stop-and-copy"])
    func aRunningProcessMovesStronglyAndEndsWithTheResultOfAnUninterruptedRun(mode: String) throws {
        let cluster = try TestCluster()
        try cluster.start("n1")
        try cluster.start("n2")
        try Self.spawnGated(cluster, "sha", on: "n1")
        let moved = try cluster.run(
            "migrate",
            ["sha", "--to", "n2", "--json"] + (mode == "strong" ? [] : ["--mode", mode])
        )
        try #require(moved.status == 0, "\(moved.error)\n\(cluster.log("n1"))\n\(cluster.log("n2"))")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(moved.output.utf8)) as? [String: Any])
        #expect(report["mode"] as? String == mode)
        // All of memory went once, while it stood.
        let memory = try #require(report["memory_bytes"] as? Int)
        #expect(report["rounds"] as? Int == 1 && report["converged"] as? Bool == true)
        #expect(report["pages_sent"] as? Int == (memory + 4095) / 4096 && report["throttled"] as? Int == 0)
        #expect(report["from"] as? String == "n1" && report["to"] as? String == "n2")
        #expect((report["code_bytes_sent"] as? Int ?? 0) > 0, "n2 lacked the module")
        #expect((report["bytes_sent"] as? Int ?? 0) > (report["code_bytes_sent"] as? Int ?? 0))
        for key in ["total_ms", "downtime_ms"] { #expect(report[key] is Double || report[key] is Int, "\(key)") }
        let phases = try #require(report["phases_ms"] as? [String: Double], "where the time went")
        #expect(Set(phases.keys) == ["hold", "prepare", "connect", "offer", "code", "memory", "state", "commit"])
        let listed = try cluster.listings(of: "sha")
        #expect(listed.count == 1 && listed[0].node == "n2" && listed[0].epoch == 2 && listed[0].moves == 1)
        Self.openGate("sha", in: cluster)
        let waited = try cluster.run("wait", ["sha"])
        #expect(waited.output == Self.digest + "\n", "\(waited.error)")
    }

    /// The same move with the nodes named, claimed and found on a three-member etcd cluster
    /// (`ferry node --registry etcd://...`) instead of the endpoint daemon.
    @Test(.enabled(if: EtcdCluster.binary != nil, "\(EtcdCluster.missing)"))
    func aProcessMovesBetweenNodesThatFindEachOtherOnEtcd() throws {
        let etcd = try EtcdCluster()
        defer { etcd.close() }
        let cluster = try TestCluster(registry: etcd.url)
        try cluster.start("n1")
        try cluster.start("n2")
        try Self.spawnGated(cluster, "sha", on: "n1")
        #expect(try cluster.listings(of: "sha").map(\.node) == ["n1"])
        let moved = try cluster.run("migrate", ["sha", "--to", "n2"])
        try #require(moved.status == 0, "\(moved.error)\n\(cluster.log("n1"))\n\(cluster.log("n2"))")
        let listed = try cluster.listings(of: "sha")
        #expect(listed.count == 1 && listed[0].node == "n2" && listed[0].epoch == 2 && listed[0].moves == 1)
        Self.openGate("sha", in: cluster)
        let waited = try cluster.run("wait", ["sha"])
        #expect(waited.output == Self.digest + "\n", "\(waited.error)")
    }

    /// In a cluster with an authority, a process moves between members over TLS 1.3 with their
    /// certificates; the migration port refuses a peer without one at the handshake, before it
    /// reads a byte of what the peer offers, and says so in one log line.
    @Test func membersMoveProcessesOverTLSAndTheMigrationPortRefusesAnyoneElse() throws {
        let cluster = try TestCluster(secured: true)
        try cluster.start("n1")
        try cluster.start("n2")
        try Self.spawnGated(cluster, "sha", on: "n1")
        let moved = try cluster.run("migrate", ["sha", "--to", "n2"])
        try #require(moved.status == 0, "\(moved.error)\n\(cluster.log("n1"))\n\(cluster.log("n2"))")
        #expect(try cluster.listings(of: "sha").map(\.node) == ["n2"])

        // An outsider speaks the migration protocol in plain TCP: an offer frame after the greeting.
        let migration = try #require(cluster.node("n2").migrationEndpoint)
        let port = try #require(migration.split(separator: ":").last.flatMap { Int($0) })
        let outsider = try TestClient(port: port)
        outsider.send(Array("FMIG\u{01}".utf8) + [1, 0, 0, 0, 0, 0, 0, 0, 2] + Array("{}".utf8))
        let answer = outsider.receive(64)
        #expect(answer.isEmpty || answer.first == 0x15, "nothing but a TLS alert comes back: \(answer)")
        let refused = waitUntil(within: .seconds(10)) { cluster.log("n2").contains("refused migration peer") }
        #expect(refused != nil, "n2 logs the refusal: \(cluster.log("n2"))")
        #expect(cluster.log("n2").contains("it spoke without TLS"), "\(cluster.log("n2"))")

        Self.openGate("sha", in: cluster)
        let waited = try cluster.run("wait", ["sha"])
        #expect(waited.output == Self.digest + "\n", "\(waited.error)")
    }

    /// A node on WasmKit and one on Wasmtime, separate processes: a running process moves from
    /// one to the other, its stack and memory as they were, and ends as an uninterrupted run does.
    @Test(.enabled(if: (try? GuestEngine.wasmtime.availability.get()) != nil, "the Wasmtime library is not installed"))
    func aRunningProcessMovesStronglyBetweenNodesOnDifferentEngines() throws {
        let cluster = try TestCluster()
        try cluster.start("n1", extra: ["--engine", "wasmkit"])
        try cluster.start("n2", extra: ["--engine", "wasmtime"])
        try Self.spawnGated(cluster, "sha", on: "n1")
        let moved = try cluster.run("migrate", ["sha", "--to", "n2"])
        try #require(moved.status == 0, "\(moved.error)\n\(cluster.log("n2"))")
        #expect(cluster.log("n2").contains("guests run on the wasmtime engine"))
        Self.openGate("sha", in: cluster)
        let waited = try cluster.run("wait", ["sha"])
        #expect(waited.output == Self.digest + "\n", "\(waited.error)")
    }

    @Test func aSecondMoveOfTheSameModuleToTheSameNodeSendsNoCode() throws {
        let cluster = try TestCluster()
        try cluster.start("n1")
        try cluster.start("n2")
        try Self.spawnGated(cluster, "first", on: "n1")
        try Self.spawnGated(cluster, "second", on: "n1")
        let reports = try ["first", "second"].map { name -> [String: Any] in
            let moved = try cluster.run("migrate", [name, "--to", "n2", "--mode", "weak", "--json"])
            try #require(moved.status == 0, "\(moved.error)")
            return try #require(try JSONSerialization.jsonObject(with: Data(moved.output.utf8)) as? [String: Any])
        }
        #expect((reports[0]["code_bytes_sent"] as? Int ?? 0) > 0)
        #expect(reports[1]["code_bytes_sent"] as? Int == 0, "the code is in n2's cache by then")
        #expect(reports.allSatisfy { $0["mode"] as? String == "weak" })
        // Weak: memory came, the stack did not; the hash starts again and ends the same.
        for name in ["first", "second"] {
            Self.openGate(name, in: cluster)
            #expect(try cluster.run("wait", [name]).output == Self.digest + "\n")
        }
    }

    @Test(arguments: ["strong", "weak"])
    func aMobileAgentVisitsNodesReadsEachOnesOwnValueAndComesHome(mode: String) throws {
        let cluster = try TestCluster()
        for (index, name) in ["n1", "n2", "n3"].enumerated() {
            try cluster.start(name, extra: ["--local", "temperature=\(20 + index)"])
        }
        let arguments = mode == "weak" ? ["--", "--weak", "n2", "n3"] : ["n2", "n3"]
        let spawned = try cluster.run(
            "spawn",
            ["--node", "n1", try cluster.signed("agent"), "--name", "agent"] + arguments
        )
        try #require(spawned.status == 0, "\(spawned.error)")
        let waited = try cluster.run("wait", ["agent"])
        #expect(waited.status == 0, "\(waited.error)\n\(cluster.log("n1"))")
        let logs = try cluster.run("logs", ["agent"])
        #expect(logs.output == "at n2: 21\nat n3: 22\nhome at n1: visited 2 nodes, total 43\n")
        let listed = try cluster.listings(of: "agent")
        #expect(listed.count == 1 && listed[0].node == "n1" && listed[0].moves == 3 && listed[0].epoch == 4)
    }

    @Test func movesThatCannotHappenAreRefusedClearlyAndLoseNothing() throws {
        let cluster = try TestCluster()
        try cluster.start("n1")
        let n2 = try cluster.start("n2")
        try Self.spawnGated(cluster, "sha", on: "n1")

        let unknown = try cluster.run("migrate", ["sha", "--to", "nowhere"])
        #expect(unknown.status != 0 && unknown.error.contains("no node named 'nowhere'"), "\(unknown.error)")

        // Garbage on n2's migration port closes that connection only.
        Self.sendGarbage(to: try Self.migrationPort(of: n2, in: cluster))

        // Two moves at once: one takes the process, the other is told why it cannot.
        let first = Thread.detached { try? cluster.run("migrate", ["sha", "--to", "n2"]) }
        let second = try cluster.run("migrate", ["sha", "--to", "n2"])
        let results = [second] + ((first.value() ?? nil).map { [$0] } ?? [])
        #expect(results.filter { $0.status == 0 }.count == 1, "\(results.map(\.error))")
        #expect(
            results.filter { $0.status != 0 }.allSatisfy {
                $0.error.contains("moving") || $0.error.contains("on n2 already")
            }
        )
        #expect(cluster.log("n2").contains("garbage on the migration port"))
        Self.openGate("sha", in: cluster)
        #expect(try cluster.run("wait", ["sha"]).output == Self.digest + "\n")
        #expect(try cluster.listings(of: "sha").map(\.node) == ["n2"])
    }

    @Test func codeIsCheckedBeforeItRunsBySpawnEvalAndMoves() throws {
        let cluster = try TestCluster()
        try cluster.start("n1")
        try cluster.start("loose", trust: false)
        let unsigned = TestCluster.guest("counter")
        let spawn = try cluster.run("spawn", ["--node", "n1", unsigned, "--invoke", "increment", "1"])
        #expect(spawn.status != 0 && spawn.error.contains("not signed"), "\(spawn.error)")
        let eval = try cluster.run("eval", ["--node", "n1", unsigned, "--invoke", "increment", "1"])
        #expect(eval.status != 0 && eval.error.contains("not signed"), "\(eval.error)")

        var tampered = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try cluster.signed("counter"))))
        tampered[tampered.count - 3] ^= 0x01
        let tamperedPath = cluster.directory + "/tampered.wasm"
        try Data(tampered).write(to: URL(fileURLWithPath: tamperedPath))
        let changed = try cluster.run("spawn", ["--node", "n1", tamperedPath, "--invoke", "increment", "1"])
        #expect(changed.status != 0 && changed.error.contains("changed after it was signed"), "\(changed.error)")

        try cluster.ferry(["keys", "generate", "--out", cluster.directory + "/other"])
        let foreign = cluster.directory + "/foreign.wasm"
        try cluster.ferry(["sign", unsigned, "--key", cluster.directory + "/other/ferry.key", "--out", foreign])
        let untrusted = try cluster.run("spawn", ["--node", "n1", foreign, "--invoke", "increment", "1"])
        #expect(untrusted.status != 0 && untrusted.error.contains("does not trust"), "\(untrusted.error)")

        // An unsigned process on a node that allows it cannot move to one that does not.
        let gate = "\(cluster.directory)/gate-loose"
        try FileManager.default.createDirectory(atPath: gate, withIntermediateDirectories: true)
        let spawned = try cluster.run(
            "spawn",
            [
                "--node", "loose", TestCluster.guest("gated"), "--name", "loose", "--dir", gate, "--invoke", "hash",
                "--result-bytes", "32", Self.bytes,
            ]
        )
        try #require(spawned.status == 0, "\(spawned.error)")
        let moved = try cluster.run("migrate", ["loose", "--to", "n1"])
        #expect(moved.status != 0 && moved.error.contains("not signed"), "\(moved.error)")
        Self.openGate("loose", in: cluster)
        #expect(try cluster.run("wait", ["loose"]).output == Self.digest + "\n", "it carried on where it was")
    }

    @Test func remoteEvaluationRunsThereAndCodeOnDemandFetchesWhatANodeLacks() throws {
        let cluster = try TestCluster()
        try cluster.start("n1", extra: ["--local", "temperature=30"])
        let n2 = try cluster.start("n2", extra: ["--local", "temperature=40"])
        let agent = try cluster.signed("agent")
        let there = try cluster.run("eval", ["--node", "n2", agent, "--invoke", "temperature"])
        #expect(there.output == "40\n", "evaluated against n2's own resources: \(there.error)")

        // Code on demand: n1 holds the module; n2 is asked for it by digest only and fetches it.
        let counter = try cluster.signed("counter")
        try cluster.run("spawn", ["--node", "n1", counter, "--name", "c1", "--invoke", "increment", "5"])
        let digest = try #require(
            try cluster.ferry(["verify", counter, "--trust", cluster.publicKey]).output
                .split(separator: " ").last.map { String($0.dropLast(2)) }
        )
        let byDigest = try cluster.run(
            "spawn",
            ["--node", "n2", "--digest", digest, "--name", "c2", "--invoke", "increment", "7"]
        )
        #expect(byDigest.status == 0, "\(byDigest.error)")
        #expect(try cluster.run("wait", ["c2"]).output == "7\n")
        #expect(cluster.log("n2").contains("code on demand"))
        // And a client runs code it fetches from a node, here.
        let local = try cluster.ferry([
            "guest", "run", "--from", n2.endpoint, digest, "--trust", cluster.publicKey, "--invoke", "increment", "9",
        ])
        #expect(local.output == "9\n", "\(local.error)")
    }

    @Test func sigtermWithEvacuateToMovesTheNodesProcessesFirst() throws {
        let cluster = try TestCluster()
        let n1 = try cluster.start("n1", extra: ["--evacuate-to", "n2"])
        try cluster.start("n2")
        try Self.spawnGated(cluster, "sha", on: "n1")
        kill(n1.process.processIdentifier, SIGTERM)
        #expect(n1.exited(within: 60) && n1.process.terminationStatus == 0, "n1 stops gracefully")
        #expect(try cluster.listings(of: "sha").map(\.node) == ["n2"], "\(cluster.log("n1"))")
        Self.openGate("sha", in: cluster)
        #expect(try cluster.run("wait", ["sha"]).output == Self.digest + "\n")
    }

    @Test func aSnapshotFromAPeerThatDoesNotHoldTheProcessOrOfAnOlderEpochIsRefused() throws {
        let cluster = try TestCluster()
        try cluster.start("n1")
        let n2 = try cluster.start("n2")
        try Self.spawnGated(cluster, "sha", on: "n1")
        let claim = try cluster.ferry([
            "endpoints", "--addr", cluster.daemon.endpoint, "lookup", "process:sha", "--json",
        ])
        let lease = try #require(
            claim.output.firstMatch(of: /"leaseID":\s*(\d+)/).map { String($0.1) },
            "\(claim.output)"
        )
        let port = try Self.migrationPort(of: n2, in: cluster)
        func offer(lease: String, epoch: Int) -> String {
            """
            {"spec":{"name":"sha","digest":"\(String(repeating: "0", count: 64))","arguments":[],"directories":[],"lowers":[]},\
            "source":"n1","sourceLease":\(lease),"epoch":\(epoch),"strong":true,"runningDigest":"","memoryBytes":65536,\
            "moves":0,"cpuMilliseconds":0,"connections":[],"kvKeys":[],"lowers":[]}
            """
        }
        let stale = Self.exchange(port: port, offer: offer(lease: lease, epoch: 0))
        #expect(stale.contains("epoch"), "an older epoch is refused: \(stale)")
        let stranger = Self.exchange(port: port, offer: offer(lease: "12345", epoch: 1))
        #expect(stranger.contains("not a peer to take it from"), "\(stranger)")
        #expect(try cluster.listings(of: "sha").map(\.node) == ["n1"], "nothing was lost")
        Self.openGate("sha", in: cluster)
        #expect(try cluster.run("wait", ["sha"]).output == Self.digest + "\n")
    }

    /// Offers a process on a node's migration port by hand, and returns the refusal's text.
    static func exchange(port: Int, offer: String) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        let payload = Array(offer.utf8)
        let length = UInt64(payload.count)
        let frame =
            Array("FMIG\u{01}".utf8) + [1]
            + (0..<8).reversed().map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) }
            + payload
        _ = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var answer = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 4096, 0) }
            if got <= 0 { break }
            answer += buffer.prefix(got)
        }
        // A refuse frame: type 3, then its length and the reason in JSON.
        guard answer.first == 3, answer.count > 9 else { return "no refusal: \(answer.prefix(40))" }
        return String(decoding: answer.dropFirst(9), as: UTF8.self)
    }

    @Test func ferryUpStartsItsNodesAsProcessesThatTrustTheClusterKey() throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let data = temporary.path
        let up = try FerryProcessTests.Running(
            [
                "up", "--port", "0", "--control-port", "0", "--endpoints-port", "0", "--kv-port", "0", "--objects-port",
                "0", "--redirector-port", "0", "--dashboard-port", "0", "--dns-port",
                "0", "--data-dir", data, "--nodes", "2",
            ]
        )
        var lines: [String] = []
        while let line = up.nextLine(), line != "Ctrl-C stops the node." { lines.append(line) }
        let daemon = try #require(lines.first { $0.hasPrefix("endpoints on ") }).dropFirst("endpoints on ".count)
        #expect(lines.filter { $0.hasPrefix("node      node-") }.count == 2, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("signing   \(data)/cluster/ferry.key") })
        let nodes = Self.children(of: up.process.processIdentifier).filter { $0.hasPrefix("node\0--name\0node-") }
        #expect(nodes.count == 2, "the nodes are processes of their own: \(nodes)")

        #expect(
            lines.contains(
                "tls       \(data)/tls  (every FerryWire connection: TLS 1.3, both ends certified by the cluster's authority)"
            )
        )
        let cluster = try TestCluster()
        let signed = cluster.directory + "/agent.wasm"
        try cluster.ferry(["sign", TestCluster.guest("agent"), "--key", "\(data)/cluster/ferry.key", "--out", signed])
        // The cluster's commands find its credentials in its data directory; without them, refused.
        let member = ["FERRY_DATA_DIR": data]
        let outsider = try cluster.ferry(["ps", "--endpoints", String(daemon)])
        #expect(outsider.status != 0 && outsider.error.contains("has no cluster credentials"), "\(outsider.error)")
        let spawn = try cluster.ferry(
            ["spawn", "--endpoints", String(daemon), "--node", "node-1", signed, "--name", "tour", "node-2"],
            environment: member
        )
        #expect(spawn.status == 0, "\(spawn.error)")
        #expect(try cluster.ferry(["wait", "--endpoints", String(daemon), "tour"], environment: member).status == 0)
        let logs = try cluster.ferry(["logs", "--endpoints", String(daemon), "tour"], environment: member).output
        #expect(logs == "at node-2: 24\nhome at node-1: visited 1 nodes, total 24\n", "\(logs)")
        #expect(up.stop(SIGINT) == 0, "Ctrl-C stops the cluster, its nodes with it")
    }

    /// The command lines (arguments after the program, NUL-separated) of `parent`'s children.
    static func children(of parent: pid_t) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid -> String? in
            guard Int32(pid) != nil,
                let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let end = stat.lastIndex(of: ")")
            else { return nil }
            // After the command's name: state, then the parent's pid.
            let fields = stat[stat.index(after: end)...].split(separator: " ")
            guard fields.count > 1, Int32(fields[1]) == parent,
                let line = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
            else { return nil }
            return String(decoding: line.drop { $0 != 0 }.dropFirst(), as: UTF8.self)
        }
    }

    /// Where node `member` takes moving processes, as its registration says.
    static func migrationPort(of member: TestCluster.Member, in cluster: TestCluster) throws -> Int {
        let listed = try cluster.ferry([
            "endpoints", "--addr", cluster.daemon.endpoint, "lookup", "node:\(member.name)", "--json",
        ])
        guard let range = listed.output.range(of: "\"migration\":\"") else { throw TestCluster.Failure(listed.output) }
        let rest = listed.output[range.upperBound...]
        let address = rest.prefix { $0 != "\"" }
        return Int(address.split(separator: ":").last ?? "") ?? 0
    }

    static func sendGarbage(to port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        let junk = Array("GET / HTTP/1.1\r\n\r\n this is not a process".utf8)
        _ = junk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var byte: UInt8 = 0
        _ = recv(fd, &byte, 1, 0)  // the node closes it
        close(fd)
    }
}

extension Thread {
    /// Runs `body` on a thread of its own; `value()` waits for it.
    final class Detached<Value: Sendable>: @unchecked Sendable {
        private let condition = NSCondition()
        private var result: Value?
        private var done = false

        init(_ body: @escaping @Sendable () -> Value) {
            Thread.detachNewThread {
                let value = body()
                self.condition.lock()
                self.result = value
                self.done = true
                self.condition.signal()
                self.condition.unlock()
            }
        }

        func value() -> Value? {
            self.condition.lock()
            defer { self.condition.unlock() }
            while !self.done { self.condition.wait() }
            return self.result
        }
    }

    static func detached<Value: Sendable>(_ body: @escaping @Sendable () -> Value) -> Detached<Value> { Detached(body) }
}
