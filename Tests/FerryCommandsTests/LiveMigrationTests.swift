import FerryMigration
import Foundation
import NIOConcurrencyHelpers
import Testing

/// Live migration as a user drives it: `ferry migrate --mode post-copy | hybrid | pre-copy`,
/// with nodes as processes of their own.
@Suite(.serialized, .onThreadsOfTheirOwn) struct LiveMigrationTests {
    static let postCopy = MissingPages.kernelRefusal == nil

    static func report(_ result: TestCluster.Result) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
    }

    @Test(.enabled(if: Self.postCopy, "post-copy needs userfaultfd's missing mode"))
    func postCopyResumesTheProcessAtTheTargetAndSendsEachPageOnce() throws {
        let cluster = try TestCluster()
        try cluster.start("n1")
        try cluster.start("n2")
        try MigrationTests.spawnGated(cluster, "sha", on: "n1")
        let moved = try cluster.run("migrate", ["sha", "--to", "n2", "--mode", "post-copy", "--json"])
        try #require(moved.status == 0, "\(moved.error)\n\(cluster.log("n1"))\n\(cluster.log("n2"))")
        let report = try Self.report(moved)
        #expect(report["mode"] as? String == "post-copy")
        let memory = try #require(report["memory_bytes"] as? Int)
        #expect(report["pages_sent"] as? Int == (memory + 4095) / 4096, "each page once: \(report)")
        #expect(report["pages_on_demand"] is Int && report["tracking"] == nil)
        let phases = try #require(report["phases_ms"] as? [String: Double])
        #expect(phases["post-copy"] != nil, "the pages that followed the commit: \(phases)")
        let listed = try cluster.listings(of: "sha")
        #expect(listed.count == 1 && listed[0].node == "n2" && listed[0].state == "running", "\(listed)")
        MigrationTests.openGate("sha", in: cluster)
        #expect(try cluster.run("wait", ["sha"]).output == MigrationTests.digest + "\n")
    }

    /// A process that keeps writing 4 MiB of its memory at 4 MiB/s is live while its memory goes,
    /// and a process whose result depends on every byte of its memory ends as an uninterrupted run.
    /// Pre-copy resends in rounds what it wrote; hybrid makes one pass, then fetches the rest.
    @Test(arguments: ["pre-copy", "hybrid"])
    func aWritingProcessMovesLiveAndAComputationEndsTheSame(mode: String) throws {
        if mode == "hybrid", !Self.postCopy {
            print("skipped: hybrid ends in post-copy, which needs userfaultfd's missing mode")
            return
        }
        let cluster = try TestCluster()
        try cluster.start("n1")
        try cluster.start("n2")
        let spawned = try cluster.run(
            "spawn",
            ["--node", "n1", try cluster.signed("writer"), "--name", "writer", "--max-memory", "33554432", "4", "4"]
        )
        try #require(spawned.status == 0, "\(spawned.error)")
        let limits = mode == "pre-copy" ? ["--max-downtime", "20", "--max-rounds", "10"] : []
        let moved = try cluster.run("migrate", ["writer", "--to", "n2", "--mode", mode, "--json"] + limits)
        try #require(moved.status == 0, "\(moved.error)\n\(cluster.log("n1"))\n\(cluster.log("n2"))")
        let report = try Self.report(moved)
        #expect(report["mode"] as? String == mode)
        let rounds = try #require(report["rounds"] as? Int)
        if mode == "pre-copy" {
            #expect(rounds >= 2, "a round while it ran, and the rest at its stop")
        } else {
            #expect(rounds == 1, "one pass while it ran")
        }
        let tracking = WrittenPages.kernelRefusal == nil ? "kernel" : "checksums"
        #expect(report["tracking"] as? String == tracking, "the report says how written pages were found")
        let memory = try #require(report["memory_bytes"] as? Int)
        #expect((report["pages_sent"] as? Int ?? 0) >= memory / 4096, "all of memory, and what it wrote again")
        let listed = try cluster.listings(of: "writer")
        #expect(listed.count == 1 && listed[0].node == "n2" && listed[0].state == "running", "\(listed)")
        #expect(try cluster.run("kill", ["writer"]).status == 0)

        try MigrationTests.spawnGated(cluster, "sha", on: "n1")
        let again = try cluster.run("migrate", ["sha", "--to", "n2", "--mode", mode])
        try #require(again.status == 0, "\(again.error)")
        MigrationTests.openGate("sha", in: cluster)
        #expect(try cluster.run("wait", ["sha"]).output == MigrationTests.digest + "\n")
    }

    /// A process that writes every page of its memory as fast as it can never lets pre-copy's
    /// rounds shrink: auto-converge slows it down, in steps, and says how far.
    @Test func preCopyThrottlesAProcessThatWritesFasterThanItsPagesGo() throws {
        let cluster = try TestCluster()
        try cluster.start("n1")
        try cluster.start("n2")
        // A writer starved of CPU by a loaded machine (CI runs suites side by side) can fall behind
        // the copy: each round then leaves less than half of what it sent, so pre-copy either
        // converges or runs out of rounds with nothing to throttle (seen in CI: seven rounds,
        // unconverged, unthrottled). Such an attempt shows nothing either way and is made again,
        // up to forty times (two seconds or so each: ten in a row converged in 24 s of one CI
        // run, the writer not scheduled within a round); the last must have been throttled.
        let attempts = 40
        for (name, converge) in [("fast", true), ("free", false)] {
            for attempt in 1...attempts {
                let process = "\(name)-\(attempt)"
                let spawned = try cluster.run(
                    "spawn",
                    [
                        "--node", "n1", try cluster.signed("writer"), "--name", process, "--max-memory", "33554432",
                        "16", "0",
                    ]
                )
                try #require(spawned.status == 0, "\(spawned.error)")
                try Self.waitUntilRunning(process, for: .milliseconds(200), in: cluster)
                let moved = try cluster.run(
                    "migrate",
                    [
                        process, "--to", "n2", "--mode", "pre-copy", "--max-downtime", "0.01", "--max-rounds", "6",
                        "--json",
                    ]
                        + (converge ? [] : ["--no-auto-converge"])
                )
                try #require(moved.status == 0, "\(moved.error)")
                let report = try Self.report(moved)
                #expect(try cluster.run("kill", [process]).status == 0)
                let throttled = report["throttled"] as? Int ?? 0
                if converge {
                    if throttled == 0, attempt < attempts { continue }
                    #expect(throttled >= 20, "\(moved.output)")
                } else {
                    #expect(throttled == 0, "\(moved.output)")
                }
                break
            }
        }
    }

    /// A client calling a process while it moves, in every mode, sees no failed call: calls made
    /// while it stops wait, follow it, and are answered where it runs after, each exactly once.
    @Test func callsToAMovingProcessWaitAndAreAnsweredOnceInEveryMode() throws {
        let cluster = try TestCluster()
        try cluster.start("n1")
        try cluster.start("n2")
        let spawned = try cluster.run("spawn", ["--node", "n1", try cluster.signed("echo"), "--name", "echo", "8"])
        try #require(spawned.status == 0, "\(spawned.error)")
        let first = try cluster.run("send", ["echo", "hello"])
        #expect(first.output == "HELLO\n", "\(first.error)")

        let calls = NIOLockedValueBox((made: 0, failed: [String](), stop: false))
        // Two clients, each with one call outstanding at a time.
        let clients = (0..<2).map { client in
            Thread {
                var number = 0
                while !calls.withLockedValue({ $0.stop }) {
                    number += 1
                    let answer = try? cluster.run("send", ["echo", "call-\(client)-\(number)"])
                    calls.withLockedValue { calls in
                        calls.made += 1
                        if answer?.output != "CALL-\(client)-\(number)\n" {
                            calls.failed.append("call \(number): \(answer?.output ?? "") \(answer?.error ?? "")")
                        }
                    }
                }
            }
        }
        for client in clients { client.start() }
        let modes = ["stop-and-copy", "pre-copy", "weak"] + (Self.postCopy ? ["post-copy", "hybrid"] : [])
        for (index, mode) in modes.enumerated() {
            let moved = try cluster.run("migrate", ["echo", "--to", index % 2 == 0 ? "n2" : "n1", "--mode", mode])
            #expect(moved.status == 0, "\(mode): \(moved.error)")
        }
        calls.withLockedValue { $0.stop = true }
        while !clients.allSatisfy(\.isFinished) { usleep(10_000) }
        let (made, failed, _) = calls.withLockedValue { $0 }
        #expect(made > 0 && failed.isEmpty, "\(failed.count) of \(made) calls failed: \(failed.prefix(3))")
        // Each call reached it once: it counts the first call and every one since.
        #expect(try cluster.run("send", ["echo", "count"]).output == "\(made + 1)\n")
    }

    /// A call still waiting when the move goes ahead without it (a move waits at most 10 s for
    /// the call in progress) is answered all the same: the process keeps the call's answer at the
    /// target, and the node the call went in at fetches it from there. It reaches the process once.
    @Test func aCallThatOutlastsTheMovesWaitIsAnsweredFromWhereTheProcessWent() throws {
        let cluster = try TestCluster()
        try cluster.start("n1")
        try cluster.start("n2")
        let spawned = try cluster.run("spawn", ["--node", "n1", try cluster.signed("echo"), "--name", "echo"])
        try #require(spawned.status == 0, "\(spawned.error)")
        let answer = NIOLockedValueBox<TestCluster.Result?>(nil)
        let call = Thread { answer.withLockedValue { $0 = try? cluster.run("send", ["echo", "wait 12000"]) } }
        call.start()
        var waiting = false
        for _ in 0..<1000 where !waiting {
            waiting = try cluster.run("logs", ["echo"]).output.contains("waiting")
            if !waiting { usleep(20_000) }
        }
        try #require(waiting, "the call went in: \(cluster.log("n1"))")
        let moved = try cluster.run("migrate", ["echo", "--to", "n2", "--json"])
        #expect(moved.status == 0, "\(moved.error)\n\(cluster.log("n1"))")
        while !call.isFinished { usleep(10_000) }
        let result = answer.withLockedValue { $0 }
        #expect(result?.output == "WAIT 12000\n", "\(result?.error ?? "no result")\n\(cluster.log("n1"))")
        #expect(try cluster.run("send", ["echo", "count"]).output == "1\n", "the call reached it once")
        #expect(try cluster.listings(of: "echo").map(\.node) == ["n2"])
    }

    /// Waits until process `name` has run for `cpu` (it writes by then).
    static func waitUntilRunning(_ name: String, for cpu: Duration, in cluster: TestCluster) throws {
        for _ in 0..<600 {
            let listed = try cluster.run("ps", ["--json"]).output
            let rows = try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [[String: Any]] ?? []
            let used = rows.first { $0["name"] as? String == name }?["cpu_ms"] as? Double ?? 0
            if used >= Double(cpu.components.seconds * 1000) + Double(cpu.components.attoseconds) / 1e15 { return }
            usleep(20_000)
        }
        Issue.record("\(name) never ran for \(cpu)")
    }

    /// Post-copy's known weakness, never hidden: the source killed while the target still lacks
    /// pages loses the process, which the target reports failed, with the reason; the target
    /// killed then loses it too, and `ferry migrate` says so.
    @Test(
        .enabled(if: Self.postCopy, "post-copy needs userfaultfd's missing mode"),
        arguments: [
            ("source", "commit"), ("source", "post-copy"), ("target", "source-release"), ("target", "post-copy"),
        ]
    )
    func aNodeKilledWhilePagesFollowLosesTheProcessAndSaysSo(side: String, phase: String) throws {
        let cluster = try TestCluster()
        let source = try cluster.start("n1", crashAt: side == "source" ? "source:\(phase)" : nil)
        let target = try cluster.start("n2", crashAt: side == "target" ? "target:\(phase)" : nil)
        try MigrationTests.spawnGated(cluster, "sha", on: "n1")
        let moved = try cluster.run("migrate", ["sha", "--to", "n2", "--mode", "post-copy"])
        let killed = side == "source" ? source : target
        try #require(killed.exited(within: 60), "\(side) was not killed: \(moved.error)")
        if side == "source" {
            let waited = try cluster.run("wait", ["sha"], timeout: 60)
            #expect(
                waited.status != 0 && waited.error.contains("lost in post-copy"),
                "\(waited.output) \(waited.error)"
            )
            let listed = try cluster.listings(of: "sha")
            #expect(listed.map(\.node) == ["n2"] && listed.first?.state == "failed", "\(listed)")
        } else {
            #expect(moved.status != 0 && moved.error.contains("lost there"), "\(moved.output) \(moved.error)")
            #expect(try cluster.listings(of: "sha").isEmpty, "nowhere: the source let it go at the commit")
        }
    }
}
