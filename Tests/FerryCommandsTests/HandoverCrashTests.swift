import Foundation
import Testing

/// A process exists exactly once: `kill -9` of the source or the target node at each phase of a
/// hand-over, the killed node started again on its data directory, and the process then runs on
/// one node only, to the result of an uninterrupted run.
@Suite(.serialized, .onThreadsOfTheirOwn) struct HandoverCrashTests {
    static let phases = ["code-sent", "memory-sent", "state-sent", "commit", "source-release"]

    @Test(arguments: ["source", "target"], Self.phases)
    func aNodeKilledAtEachPhaseLeavesTheProcessRunningOnExactlyOneNode(side: String, phase: String) throws {
        try Self.killed(side, at: phase, mode: "stop-and-copy")
    }

    /// Pre-copy: the hand-over opens while the process runs, and its memory goes before it stops.
    @Test(arguments: ["source", "target"], Self.phases)
    func aNodeKilledAtEachPhaseOfPreCopyLeavesTheProcessRunningOnExactlyOneNode(side: String, phase: String) throws {
        try Self.killed(side, at: phase, mode: "pre-copy")
    }

    /// Post-copy, where the process survives: a kill before the commit leaves it at the source, a
    /// target killed at its commit is found gone, and a source that let go had sent every page.
    /// (A kill while pages still follow loses it: LiveMigrationTests.)
    @Test(arguments: [
        ("source", "code-sent"), ("source", "memory-sent"), ("source", "state-sent"), ("source", "source-release"),
        ("target", "code-sent"), ("target", "memory-sent"), ("target", "state-sent"), ("target", "commit"),
    ])
    func aNodeKilledBeforeOrAfterPostCopyLeavesTheProcessRunningOnExactlyOneNode(side: String, phase: String) throws {
        guard LiveMigrationTests.postCopy else {
            print("skipped: post-copy needs userfaultfd's missing mode")
            return
        }
        try Self.killed(side, at: phase, mode: "post-copy")
    }

    static func killed(_ side: String, at phase: String, mode: String) throws {
        let cluster = try TestCluster()
        let source = try cluster.start("n1", crashAt: side == "source" ? "source:\(phase)" : nil)
        let target = try cluster.start("n2", crashAt: side == "target" ? "target:\(phase)" : nil)
        try MigrationTests.spawnGated(cluster, "sha", on: "n1")
        let moved = try cluster.run("migrate", ["sha", "--to", "n2", "--mode", mode, "--json"])
        let killed = side == "source" ? source : target
        try #require(killed.exited(within: 60), "\(side) was not killed at \(phase) (\(mode)): \(moved.error)")
        #expect(killed.process.terminationReason == .uncaughtSignal)

        // Where the process is while the killed node is down.
        let survivor = side == "source" ? "n2" : "n1"
        let committed = ["commit", "source-release"].contains(phase)
        if side == "target" {
            // A target that died before it committed leaves the process at the source; one that
            // died after the commit but before it answered is found gone, and the source takes it
            // back; one that answered has it.
            let expected = phase == "source-release" ? [String]() : ["n1"]
            let listed = try cluster.listings(of: "sha").map(\.node)
            #expect(listed == expected, "at \(phase): listed on \(listed); migrate said \(moved.output) \(moved.error)")
            #expect((moved.status == 0) == (phase == "source-release"), "\(moved.error)")
        } else if committed {
            // The commit was sent before the source died: the target takes it, once it has read it.
            var listed: [String] = []
            for _ in 0..<300 {
                listed = try cluster.listings(of: "sha").map(\.node)
                if listed == ["n2"] { break }
                usleep(100_000)
            }
            #expect(listed == ["n2"], "the target committed: it has it")
        } else {
            #expect(try cluster.listings(of: "sha").filter { $0.node == survivor }.isEmpty, "never on the target")
        }

        try cluster.start(killed.name)
        MigrationTests.openGate("sha", in: cluster)
        let waited = try cluster.run("wait", ["sha"], timeout: 180)
        #expect(
            waited.output == MigrationTests.digest + "\n",
            "\(waited.error)\n\(cluster.log("n1"))\n\(cluster.log("n2"))"
        )
        let listed = try cluster.listings(of: "sha")
        #expect(listed.count == 1, "exactly one node has it: \(listed)")
        #expect(listed.first?.state == "exited")
    }
}
