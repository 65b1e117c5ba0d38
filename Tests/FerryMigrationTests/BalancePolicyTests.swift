import Testing

@testable import FerryMigration

/// The balancer's rules: when a node is over or under its threshold, and which move pays.
@Suite struct BalancePolicyTests {
    let policy = BalancePolicy()

    func node(_ name: String, runnable: Int, cpus: Double = 0.5, threads: Int = 2) -> NodeLoad {
        NodeLoad(
            node: name,
            runQueue: runnable,
            processes: runnable,
            memoryBytes: 0,
            cpuBudget: cpus,
            cpuUse: 0,
            threads: threads
        )
    }

    func process(_ name: String, cpu: Double = 1, memory: Int = 1 << 20) -> BalancePolicy.Candidate {
        BalancePolicy.Candidate(name: name, memoryBytes: memory, cpuSeconds: cpu)
    }

    @Test func aLoadedNodeOffersWorkToTheLeastLoadedOneUntilItWouldGoOverTheMean() {
        let loads = [node("a", runnable: 30), node("b", runnable: 4), node("c", runnable: 0)]
        #expect(self.policy.target(for: loads[0], among: loads)?.node == "c")
        // The mean is 10 per node: c may take up to 10, a node at the mean takes nothing.
        let evened = [node("a", runnable: 11), node("b", runnable: 10), node("c", runnable: 10)]
        #expect(self.policy.target(for: evened[0], among: evened) == nil)
        #expect(self.policy.target(for: loads[1], among: loads) == nil)
    }

    @Test func anIdleNodeAsksTheMostLoadedOneForWork() {
        let loads = [node("a", runnable: 30), node("b", runnable: 12), node("c", runnable: 0)]
        #expect(self.policy.source(for: loads[2], among: loads)?.node == "a")
        #expect(self.policy.source(for: loads[0], among: loads) == nil)
        // A node one process under the mean would go over it with one more.
        let near = [node("a", runnable: 2), node("b", runnable: 1)]
        #expect(self.policy.source(for: near[1], among: near) == nil)
    }

    @Test func aLoneProcessStaysWhereItIs() {
        let decision = self.policy.choose(
            from: node("a", runnable: 1),
            to: node("b", runnable: 0),
            candidates: [process("p", cpu: 60)],
            bandwidth: 100e6
        )
        guard case .stay(let reason) = decision else {
            Issue.record("a lone process moved: \(decision)")
            return
        }
        #expect(reason.contains("no faster"))
    }

    @Test func theProcessThatHasRunLongestIsMovedItIsExpectedToRunLongest() {
        let decision = self.policy.choose(
            from: node("a", runnable: 3),
            to: node("b", runnable: 0),
            candidates: [process("young", cpu: 0.2), process("old", cpu: 5), process("middle", cpu: 1)],
            bandwidth: 100e6
        )
        guard case .move(let move) = decision else {
            Issue.record("nothing moved: \(decision)")
            return
        }
        #expect(move.process == "old")
        // At a: 3 share 0.5 CPU; at b it has 0.5 to itself: 5 s of work takes 30 s here, 10 there.
        #expect(abs(move.gain - 20) < 0.001)
    }

    @Test func aMoveThatCostsMoreThanItSavesIsSkipped() {
        let decision = self.policy.choose(
            from: node("a", runnable: 3),
            to: node("b", runnable: 0),
            candidates: [process("big", cpu: 0.1, memory: 1 << 30)],
            bandwidth: 10e6
        )
        guard case .stay(let reason) = decision else {
            Issue.record("a move that does not pay was made: \(decision)")
            return
        }
        #expect(reason.contains("no move pays"))
    }

    @Test func pinnedWaitingAndJustArrivedProcessesNeverMove() {
        let candidates = [
            BalancePolicy.Candidate(name: "pinned", memoryBytes: 0, cpuSeconds: 10, pinned: true),
            BalancePolicy.Candidate(name: "waiting", memoryBytes: 0, cpuSeconds: 10, runnable: false),
            BalancePolicy.Candidate(
                name: "arrived",
                memoryBytes: 0,
                cpuSeconds: 10,
                resident: .milliseconds(500),
                cameFrom: "c"
            ),
        ]
        let decision = self.policy.choose(
            from: node("a", runnable: 3),
            to: node("b", runnable: 0),
            candidates: candidates,
            bandwidth: 100e6
        )
        guard case .stay = decision else {
            Issue.record("moved: \(decision)")
            return
        }
    }

    @Test func aProcessJustSpawnedMayMoveAtOnce() {
        let spawned = BalancePolicy.Candidate(name: "p", memoryBytes: 0, cpuSeconds: 0, resident: .milliseconds(10))
        let decision = self.policy.choose(
            from: node("a", runnable: 30),
            to: node("b", runnable: 0),
            candidates: [spawned],
            bandwidth: 100e6
        )
        guard case .move = decision else {
            Issue.record("a burst of spawns stays on one node: \(decision)")
            return
        }
    }

    @Test func aProcessDoesNotGoBackToTheNodeItJustCameFrom() {
        let back = BalancePolicy.Candidate(
            name: "p",
            memoryBytes: 0,
            cpuSeconds: 10,
            resident: .seconds(5),
            cameFrom: "b"
        )
        let toB = self.policy.choose(
            from: node("a", runnable: 3),
            to: node("b", runnable: 0),
            candidates: [back],
            bandwidth: 100e6
        )
        let toC = self.policy.choose(
            from: node("a", runnable: 3),
            to: node("c", runnable: 0),
            candidates: [back],
            bandwidth: 100e6
        )
        guard case .stay = toB, case .move = toC else {
            Issue.record("to b: \(toB); to c: \(toC)")
            return
        }
    }

    @Test func aMoveNeverLeavesTheTargetMoreLoadedThanTheSourceSoNothingComesBack() {
        // Two nodes, equal: 2 and 1 runnable. Moving one would only swap them.
        let decision = self.policy.choose(
            from: node("a", runnable: 2),
            to: node("b", runnable: 1),
            candidates: [process("p", cpu: 30)],
            bandwidth: 100e6
        )
        guard case .stay = decision else {
            Issue.record("moved: \(decision)")
            return
        }
        // A smaller node gives a process less than it has here.
        let small = self.policy.choose(
            from: node("a", runnable: 2, cpus: 1),
            to: node("b", runnable: 0, cpus: 0.25),
            candidates: [process("p", cpu: 30)],
            bandwidth: 100e6
        )
        guard case .stay = small else {
            Issue.record("moved to a node where it runs slower: \(small)")
            return
        }
    }

    @Test func theLoadReadsBackFromTheRegistrationsMetadata() {
        let load = NodeLoad(
            node: "a",
            runQueue: 3,
            processes: 4,
            memoryBytes: 1 << 20,
            cpuBudget: 0.5,
            cpuUse: 0.98,
            threads: 2
        )
        #expect(NodeLoad(node: "a", metadata: load.metadata) == load)
        #expect(NodeLoad(node: "a", metadata: ["migration": "127.0.0.1:1"]) == nil)
    }
}
