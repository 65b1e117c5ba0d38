import FerryTestSupport
import Foundation
import Testing

/// `ferry endpoints --registry etcd://...`: the CLI on a real three-member etcd cluster.
@Suite(.enabled(if: EtcdCluster.binary != nil, "\(EtcdCluster.missing)"))
struct EtcdRegistryCommandTests {
    private func ferry(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try FerryProcess(arguments, errors: .merged).finish()
    }

    @Test func servicesRegisterOnEtcdAndAreFoundThereWhileTheirLeaseIsRenewed() throws {
        // The test process's cluster: the names here are this test's alone.
        let endpoints = ["endpoints", "--registry", try EtcdCluster.shared().url]

        let once = try self.ferry(
            endpoints + ["register", "cli-kv", "127.0.0.1:7400", "--meta", "role=primary", "--once"]
        )
        #expect(once.status == 0 && once.output.hasPrefix("registered cli-kv, lease "), "\(once.output)")

        // A registration held until Ctrl-C: renewed, then given up.
        let held = try FerryProcess(
            endpoints + ["register", "cli-web", "127.0.0.1:8080", "--ttl", "2"],
            errors: .merged
        )
        let first = try #require(held.nextLine())
        #expect(first.hasPrefix("registering cli-web at etcd://127.0.0.1:"), "\(first)")
        held.drainOutput()
        // It registers after printing that line: look until it is there (a few tries at most).
        var found = try self.ferry(endpoints + ["lookup", "cli-web", "--json"])
        for _ in 0..<100 where found.status != 0 {
            found = try self.ferry(endpoints + ["lookup", "cli-web", "--json"])
        }
        #expect(found.output.contains("\"port\":8080"))

        let listed = try self.ferry(endpoints + ["ls", "cli-"])
        #expect(listed.status == 0)
        #expect(listed.output.contains("cli-kv 127.0.0.1:7400") && listed.output.contains("role=primary"))
        #expect(listed.output.contains("cli-web 127.0.0.1:8080"))

        #expect(held.stop(SIGINT) == 0)
        let gone = try self.ferry(endpoints + ["lookup", "cli-web"])
        #expect(gone.status != 0 && gone.output.contains("no service is registered as 'cli-web'"), "\(gone.output)")
    }

    @Test func aRegistryFlagThatIsNotEtcdIsRefusedAndADeadClusterSaysSoInOneLine() throws {
        let bad = try self.ferry(["endpoints", "--registry", "http://127.0.0.1:2379", "ls"])
        #expect(bad.status != 0 && bad.output.contains("--registry takes etcd://HOST:PORT[,HOST:PORT...]"))

        let closed = try ClosedPort()
        let dead = try self.ferry(["endpoints", "--registry", "etcd://127.0.0.1:\(closed.port)", "ls"])
        #expect(dead.status != 0)
        #expect(dead.output.contains("no etcd member answered /v3/kv/range"), "\(dead.output)")
        #expect(dead.output.split(separator: "\n").count == 1, "one line: \(dead.output)")
    }
}
