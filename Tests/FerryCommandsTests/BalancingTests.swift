import FerryTestSupport
import Foundation
import Testing

/// Load-driven migration as a user meets it: nodes started with `--balance` spread processes
/// spawned on one of them, a process spawned with `--pin` stays, and `--cpus` puts a node in a
/// cgroup with that CPU quota. Nodes are processes of their own.
@Suite(.serialized, .onThreadsOfTheirOwn) struct BalancingTests {
    /// Where `ferry ps --json` lists each process: name to (node, moves).
    static func placement(_ cluster: TestCluster) throws -> [String: [(node: String, moves: Int)]] {
        var placement: [String: [(node: String, moves: Int)]] = [:]
        for listing in try cluster.listings() where listing.state == "running" {
            placement[listing.name, default: []].append((listing.node, listing.moves))
        }
        return placement
    }

    @Test func processesSpawnedOnOneNodeSpreadOverIdleNodesAndAPinnedOneStays() throws {
        // A node starved for half a claim's ttl (seen once with the whole suite starting beside
        // this test, under the 0.3-CPU quota) gives up every process it holds, as it must so
        // that none runs twice: that run says nothing about balancing, and is made once again.
        var (cluster, placement) = try Self.spreadSixProcesses()
        if Self.aNodeLostAClaim(cluster) { (cluster, placement) = try Self.spreadSixProcesses() }
        #expect(Self.perNode(placement) == ["n1": 2, "n2": 2, "n3": 2], "\(placement)\n\(cluster.log("n1"))")
        #expect(placement.values.allSatisfy { $0.count == 1 }, "each process runs on one node: \(placement)")
        #expect(placement["pinned"]?.first?.node == "n1" && placement["pinned"]?.first?.moves == 0)
        // Every process but the pinned one was spawned on n1: one that moved and is on n1 again
        // went back and forth. A chain (n1 to n2, then n2 to n3 when n2 had more) may happen.
        #expect(
            placement.values.allSatisfy { $0[0].moves == 0 || ($0[0].node != "n1" && $0[0].moves <= 2) },
            "nothing moved back to where it came from: \(placement)"
        )
        let decisions = cluster.log("n1") + cluster.log("n2") + cluster.log("n3")
        #expect(
            decisions.contains("balance: moving '") && decisions.contains("gain"),
            "each move is logged with its figures"
        )

        let refused = try cluster.run("migrate", ["pinned", "--to", "n2"])
        #expect(refused.status != 0 && refused.error.contains("pinned"), "\(refused.error)")
        let listed = try cluster.run("ps", [])
        #expect(listed.output.contains("0 (pinned)"), "ferry ps shows the pin: \(listed.output)")
    }

    /// Three balancing nodes, a pinned process and five others spawned on n1, and where the six
    /// are once they settle two on each node (or after 90 s).
    static func spreadSixProcesses() throws -> (TestCluster, [String: [(node: String, moves: Int)]]) {
        let cluster = try TestCluster()
        // Where a CPU quota can be set, the six spinning guests take 0.9 CPUs in all, not every
        // core the suites running beside this one need.
        let quota = getuid() == 0 && Self.cgroupV1 ? ["--cpus", "0.3"] : []
        for node in ["n1", "n2", "n3"] {
            try cluster.start(node, extra: ["--balance", "both"] + quota)
        }
        let spin = try cluster.signed("spin")
        let pinned = try cluster.run("spawn", ["--node", "n1", spin, "--name", "pinned", "--pin", "--invoke", "spin"])
        try #require(pinned.status == 0, "\(pinned.error)")
        for index in 1...5 {
            let spawned = try cluster.run("spawn", ["--node", "n1", spin, "--name", "s\(index)", "--invoke", "spin"])
            try #require(spawned.status == 0, "\(spawned.error)")
        }
        // Each node has the same budget (its two threads): six processes settle two on each.
        let deadline = Date(timeIntervalSinceNow: 90)
        var placement = try Self.placement(cluster)
        while Self.perNode(placement) != ["n1": 2, "n2": 2, "n3": 2] || placement.count != 6, Date() < deadline,
            !Self.aNodeLostAClaim(cluster)
        {
            usleep(200_000)
            placement = try Self.placement(cluster)
        }
        return (cluster, placement)
    }

    /// How many processes run on each node.
    static func perNode(_ placement: [String: [(node: String, moves: Int)]]) -> [String: Int] {
        placement.values.reduce(into: [:]) { counts, listed in counts[listed[0].node, default: 0] += 1 }
    }

    static func aNodeLostAClaim(_ cluster: TestCluster) -> Bool {
        ["n1", "n2", "n3"].contains { cluster.log($0).contains("lost its claim") }
    }

    static let cgroupV1 = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    static let writesACgroup = ConditionTrait.enabled(
        if: getuid() == 0 && Self.cgroupV1,
        "--cpus writes a cgroup: needs root and cgroup v1's cpu controller"
    )

    @Test(Self.writesACgroup)
    func aNodeWithACPUQuotaRunsItsGuestsUnderItAndPublishesItsBudget() throws {
        let cluster = try TestCluster()
        let name = "quota-\(UUID().uuidString.prefix(8))"
        let node = try cluster.start(name, extra: ["--cpus", "0.5"])
        let pid = node.process.processIdentifier
        let path = "/sys/fs/cgroup/cpu/ferry/\(name).\(pid)"
        let quota = try String(contentsOfFile: path + "/guests/cpu.cfs_quota_us", encoding: .utf8)
        let period = try String(contentsOfFile: path + "/guests/cpu.cfs_period_us", encoding: .utf8)
        #expect(quota.trimmingCharacters(in: .whitespacesAndNewlines) == "50000")
        #expect(period.trimmingCharacters(in: .whitespacesAndNewlines) == "100000")
        let unlimited = try String(contentsOfFile: path + "/cpu.cfs_quota_us", encoding: .utf8)
        #expect(unlimited.trimmingCharacters(in: .whitespacesAndNewlines) == "-1", "the node's own threads: no quota")

        // The threads that run guests are under the quota; the node's others (the one that
        // renews its claims among them) are not, so spinning guests cannot starve them.
        func cpuCgroup(_ task: KernelTask) throws -> String {
            let lines = try task.file("cgroup")
            let line = try #require(lines.split(separator: "\n").first { $0.contains(":cpu:") || $0.contains(",cpu:") })
            return String(line.split(separator: ":").last ?? "")
        }
        var named: [(name: String, cgroup: String)] = []
        // Each guest thread joins its cgroup as it starts, which may be just after the node says
        // it listens.
        _ = try waitUntil {
            named = try KernelTask.all(of: pid).map { task in (task.name, try cpuCgroup(task)) }
            return named.filter { $0.cgroup.hasSuffix("/guests") }.count == 2
        }
        // `ferry-guest-N`, not the ticker (`ferry-guest-tic`, as the kernel keeps 15 bytes).
        let guests = named.filter { $0.name.hasPrefix("ferry-guest-") && $0.name.dropFirst(12).first?.isNumber == true }
        #expect(guests.count == 2, "the node's two guest threads: \(named)")
        #expect(guests.allSatisfy { $0.cgroup == "/ferry/\(name).\(pid)/guests" }, "\(named)")
        #expect(
            named.filter { $0.cgroup.hasSuffix("/guests") }.count == 2,
            "no other thread is under the quota: \(named)"
        )
        #expect(try cpuCgroup(.main(of: pid)) == "/ferry/\(name).\(pid)", "\(named)")

        let registered = try cluster.ferry(["endpoints", "--addr", cluster.daemon.endpoint, "lookup", "node:\(name)"])
        #expect(registered.output.contains("cpus=0.50"), "the node publishes its budget: \(registered.output)")
        node.process.terminate()
        #expect(node.exited(within: 30))
        #expect(!FileManager.default.fileExists(atPath: path), "a node that stops removes its cgroups")
    }

    @Test(Self.writesACgroup)
    func aKilledNodesCgroupsAreRemovedByTheNextNodeWithAQuota() throws {
        let cluster = try TestCluster()
        let name = "killed-\(UUID().uuidString.prefix(8))"
        let killed = try cluster.start(name, extra: ["--cpus", "0.5"])
        let path = "/sys/fs/cgroup/cpu/ferry/\(name).\(killed.process.processIdentifier)"
        #expect(FileManager.default.fileExists(atPath: path + "/guests"))
        kill(killed.process.processIdentifier, SIGKILL)
        #expect(killed.exited(within: 30))
        #expect(FileManager.default.fileExists(atPath: path), "kill -9 leaves the cgroups behind")

        let next = try cluster.start("next-\(UUID().uuidString.prefix(8))", extra: ["--cpus", "0.5"])
        #expect(!FileManager.default.fileExists(atPath: path), "the next node with --cpus removes them")
        next.process.terminate()
        #expect(next.exited(within: 30))
    }

    @Test func aCPUQuotaOutsideTheMachineIsRefusedBeforeTheNodeStarts() throws {
        let cluster = try TestCluster()
        for cpus in ["0", "-1", "999"] {
            let result = try cluster.ferry([
                "node", "--name", "n", "--endpoints", cluster.daemon.endpoint, "--allow-unsigned", "--cpus=\(cpus)",
            ])
            #expect(result.status != 0 && result.error.contains("--cpus takes 0.01 to"), "\(cpus): \(result.error)")
        }
    }
}
