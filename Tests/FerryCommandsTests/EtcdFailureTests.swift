import FerryClient
import FerryEndpoints
import FerryTestSupport
import FerryWire
import Foundation
import NIOConcurrencyHelpers
import Testing

/// The registry on etcd when etcd loses a member, then its leader: two object nodes and a
/// registered service run as `ferry` processes on a three-member cluster of their own while
/// clients increment counters through it.
@Suite(.serialized, .enabled(if: EtcdCluster.binary != nil, "\(EtcdCluster.missing)"))
struct EtcdFailureTests {
    /// What the callers saw: increments acknowledged per counter, and every call that failed.
    final class Calls: Sendable {
        private let state = NIOLockedValueBox((acknowledged: [String: Int64](), failures: [String](), stop: false))
        var total: Int64 { self.state.withLockedValue { $0.acknowledged.values.reduce(0, +) } }
        var acknowledged: [String: Int64] { self.state.withLockedValue { $0.acknowledged } }
        var failures: [String] { self.state.withLockedValue { $0.failures } }
        var stopped: Bool { self.state.withLockedValue { $0.stop } }
        func acknowledge(_ name: String) { self.state.withLockedValue { $0.acknowledged[name, default: 0] += 1 } }
        func fail(_ text: String) { self.state.withLockedValue { $0.failures.append(text) } }
        func stop() { self.state.withLockedValue { $0.stop = true } }
    }

    static let counters = (1...6).map { "counter/etcd-\($0)" }

    /// Waits until `condition` holds, for at most `limit`. Alone the whole test takes about 30 s;
    /// beside the other suites on two cores a phase has taken just over 60 s, and what each
    /// phase proves is that calls go on, not how fast.
    static func until(_ what: String, limit: Duration = .seconds(150), _ condition: () async -> Bool) async throws {
        let start = ContinuousClock.now
        while !(await condition()) {
            try #require(ContinuousClock.now - start < limit, "\(what) within \(limit)")
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The lease of every name the live processes hold: the object claims, the nodes' and the
    /// service's registrations.
    static func leases(_ registry: EtcdRegistry) async throws -> [String: [UInt64]] {
        var leases: [String: [UInt64]] = [:]
        for name in ["steady", ObjectNames.nodes, ObjectNames.hosts("counter")] + counters.map(ObjectNames.claim) {
            leases[name] = try await registry.lookup(name).map(\.leaseID).sorted()
        }
        return leases
    }

    /// Each counter's activations over both nodes.
    static func activations(_ nodes: [ServiceEndpoint]) async throws -> [String: Int] {
        var count: [String: Int] = [:]
        for node in nodes {
            let wire = try await WireClient.connect(host: node.host, port: node.port)
            let listing = try await wire.call(ObjectList()).decode(as: ObjectListing.self)
            await wire.close()
            for object in listing.objects where object.state == "active" { count[object.object, default: 0] += 1 }
        }
        return count
    }

    @Test func losingAMemberThenTheLeaderFailsNoCallAndKeepsEveryLiveLease() async throws {
        let etcd = try EtcdCluster()
        defer { etcd.close() }
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }
        let log = temporary.path + "/processes.log"
        let db = temporary.path + "/objects.sqlite"
        let nodes = try (0..<2).map { _ in
            try FerryProcess(
                ["serve", "objects", "--db", db, "--port", "0", "--registry", etcd.url],
                errors: .file(log)
            )
        }
        let addresses = try nodes.map { node in
            let first = try #require(
                node.nextLine(),
                "the node prints where it listens; the log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")"
            )
            return try #require(listeningAddress(first), "\(first)")
        }
        let service = try FerryProcess(
            ["endpoints", "--registry", etcd.url, "register", "steady", "127.0.0.1:9", "--ttl", "2"],
            errors: .file(log)
        )
        service.drainOutput()
        for node in nodes { node.drainOutput() }
        let registry = EtcdRegistry(try #require(EtcdClient(url: etcd.url)))
        try await Self.until("both nodes and the service are registered") {
            let hosts = (try? await registry.lookup(ObjectNames.hosts("counter")).flatMap(\.endpoints)) ?? []
            let steady = (try? await registry.lookup("steady")) ?? []
            return Set(hosts) == Set(addresses) && !steady.isEmpty
        }

        let client = ObjectClient(registry: .etcd(registry))
        let calls = Calls()
        let callers = Task {
            await withTaskGroup(of: Void.self) { group in
                for name in Self.counters {
                    group.addTask {
                        let counter = client.reference(name, deadline: .seconds(20))
                        while !calls.stopped {
                            do {
                                _ = try await counter.invoke("increment", [.int(1)], idempotent: false)
                                calls.acknowledge(name)
                                // Steady, not flat out: six callers in a tight loop would starve
                                // the suites that run beside this one.
                                try? await Task.sleep(for: .milliseconds(5))
                            } catch {
                                calls.fail("\(name): \(error)")
                                return
                            }
                        }
                    }
                }
            }
        }
        try await Self.until("every counter is called") {
            calls.acknowledged.count == Self.counters.count && calls.total >= 300
        }
        let before = try await Self.leases(registry)
        #expect(before.values.allSatisfy { !$0.isEmpty }, "\(before)")

        let follower = (try etcd.leader() + 1) % 3
        for (what, victim) in [("a follower", follower), ("the leader", nil)] {
            let killed = try victim ?? etcd.leader()
            etcd.kill(member: killed)
            let mark = calls.total
            let killedAt = ContinuousClock.now
            // Long enough that every lease had to be renewed through the cluster without the
            // member: the service's 2 s and the claims' 5 s, twice over.
            try await Self.until("calls go on after losing \(what)") {
                calls.total >= mark + 300 && ContinuousClock.now - killedAt >= .seconds(10)
                    || !calls.failures.isEmpty
            }
            #expect(calls.failures.isEmpty, "after losing \(what): \(calls.failures)")
            #expect(try await Self.leases(registry) == before, "every live lease survives losing \(what)")
            let activations = try await Self.activations(addresses)
            #expect(
                Self.counters.allSatisfy { activations[$0] == 1 },
                "each counter is active on one node after losing \(what): \(activations)"
            )
            try etcd.restart(member: killed)
        }
        calls.stop()
        await callers.value

        let acknowledged = calls.acknowledged
        for name in Self.counters {
            let value = try await client.reference(name).invoke("get", [], idempotent: true)
            #expect(value == .int(acknowledged[name] ?? -1), "\(name): every acknowledged increment counted once")
        }
        await client.close()
        #expect(service.stop(SIGINT) == 0)
        for node in nodes { #expect(node.stop(SIGTERM) == 0) }
    }
}
