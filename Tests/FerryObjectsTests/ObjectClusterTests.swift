import FerryClient
import FerryEndpoints
import FerryExamples
import FerryObjects
import FerryTestSupport
import FerryWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing

/// Several object nodes and a registry in one process, on loopback: naming, single activation,
/// moves, failures and replicas as clients see them. Each test runs on the embedded endpoint
/// daemon and, where etcd is installed, on a real three-member etcd cluster.
@Suite struct ObjectClusterTests {
    enum Backend: String, CustomTestStringConvertible, CaseIterable {
        case daemon, etcd
        var testDescription: String { self.rawValue }
        /// The backends this machine can run: etcd only where it is installed.
        static var available: [Backend] { EtcdCluster.binary == nil ? [.daemon] : [.daemon, .etcd] }
    }

    final class Cluster: Sendable {
        /// The daemon, on the daemon backend.
        let daemon: EndpointDaemon?
        let registry: RegistryAddress
        let store: String
        private let running = NIOLockedValueBox([ObjectIdentifier: Task<Void, any Error>]())

        init(_ backend: Backend = .daemon) async throws {
            switch backend {
            case .daemon:
                let daemon = try await EndpointDaemon.bind(port: 0, logger: Logger(label: "test"))
                self.daemon = daemon
                self.registry = .daemon(ServiceEndpoint(host: "127.0.0.1", port: daemon.port))
            case .etcd:
                // The test process's etcd cluster, under keys of this test's own.
                let etcd = try #require(EtcdClient(url: try EtcdCluster.shared().url))
                self.daemon = nil
                self.registry = .etcd(EtcdRegistry(etcd, root: "/ferry-test/\(UInt64.random(in: 0...UInt64.max))/"))
            }
            self.store = temporaryPath("cluster")
        }

        func client() -> ObjectClient { ObjectClient(registry: self.registry) }

        /// Starts a node hosting `counter` (persistent, in the cluster's shared store) or
        /// `scratch` (transient), and waits until its types are named at the daemon.
        /// The ttl is long unless a test is about it: a parallel test run can starve these tasks
        /// for seconds, and a lease that lapses then would fail a test about something else.
        func node(persistent: Bool = true, ttl: Duration = .seconds(60)) async throws -> ObjectServer {
            let adapter =
                persistent
                ? try ObjectAdapter(
                    name: "counters",
                    policy: ObjectPolicy(activation: .persistent),
                    types: [Counter.type()],
                    store: try ObjectStore(path: self.store)
                )
                : try ObjectAdapter(
                    name: "scratch",
                    policy: ObjectPolicy(activation: .transient),
                    types: [Counter.type(name: "scratch"), Counter.type(name: "rep")]
                )
            let server = try await ObjectServer.bind(
                adapters: [adapter],
                registry: self.registry,
                leaseTTL: ttl,
                logger: Logger(label: "test")
            )
            let task = Task { try await server.run() }
            self.running.withLockedValue { $0[ObjectIdentifier(server)] = task }
            let watcher = try await self.registry.connect(logger: Logger(label: "test"))
            let type = persistent ? "objects:counter" : "objects:scratch"
            for try await entries in watcher.watch(type)
            where entries.entries.contains(where: { $0.endpoints.contains(server.node) }) {
                break
            }
            await watcher.close()
            return server
        }

        /// Stops a node cleanly: objects deactivated and saved, names given up.
        func stop(_ server: ObjectServer) async {
            let task = self.running.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(server)) }
            task?.cancel()
            _ = await task?.result
        }

        /// Kills a node: nothing saved, its claims left to run out.
        func kill(_ server: ObjectServer) async {
            await server.halt()
            let task = self.running.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(server)) }
            _ = await task?.result
        }

        func shutdown() async {
            let tasks = self.running.withLockedValue { $0.values }
            for task in tasks {
                task.cancel()
                _ = await task.result
            }
            await self.daemon?.close()
        }
    }

    static func active(_ id: String, on server: ObjectServer) async -> ObjectStatus? {
        await server.list().first { $0.object == id && $0.state == "active" }
    }

    @Test(arguments: Backend.available) func twoNodesActivatingOneObjectAtOnceMakeOneActivation(
        _ backend: Backend
    ) async throws {
        let cluster = try await Cluster(backend)
        let a = try await cluster.node()
        let b = try await cluster.node()
        let viaA = ObjectClient(node: a.node)
        let viaB = ObjectClient(node: b.node)
        for round in 1...10 {
            let id = "counter/race-\(round)"
            async let first = CounterStub(viaA.reference(id, deadline: .seconds(90))).increment(by: 1)
            async let second = CounterStub(viaB.reference(id, deadline: .seconds(90))).increment(by: 1)
            let answers = try await [first, second].sorted()
            #expect(answers == [1, 2], "both calls reached the one activation (round \(round))")
            let onA = await Self.active(id, on: a)
            let onB = await Self.active(id, on: b)
            #expect((onA == nil) != (onB == nil), "active on exactly one node (round \(round))")
        }
        await viaA.close()
        await viaB.close()
        await cluster.shutdown()
    }

    @Test(arguments: Backend.available) func whenTheNodeHoldingAnObjectDiesAnotherTakesItOnceTheLeaseRunsOut(
        _ backend: Backend
    ) async throws {
        let cluster = try await Cluster(backend)
        // Long enough that a run starved by the suites beside it (at the start of a parallel run,
        // with the slow-client tests' 2,000 connections and the etcd and PostgreSQL servers of
        // other suites) still renews the claim and the registrations in time: 6 s was not.
        let ttl = Duration.seconds(15)
        let a = try await cluster.node(ttl: ttl)
        let b = try await cluster.node(ttl: ttl)
        let direct = ObjectClient(node: a.node)
        // Idempotent, so retried if a starved test run lets the short-lived fresh claim lapse.
        #expect(try await CounterStub(direct.reference("counter/d", deadline: .seconds(90))).get() == 0)
        let epochOnA = try #require(await Self.active("counter/d", on: a)).epoch
        await direct.close()

        await cluster.kill(a)
        let client = cluster.client()
        let value = try await CounterStub(client.reference("counter/d", deadline: .seconds(60))).increment(by: 1)
        #expect(value == 1, "the dead node never saved; the new activation starts from the store")
        let onB = try #require(await Self.active("counter/d", on: b), "B has it now")
        #expect(onB.epoch > epochOnA)
        await client.close()
        await cluster.shutdown()
    }

    @Test func aNodeThatCannotRenewItsClaimGivesTheObjectUpBeforeTheLeaseRunsOut() async throws {
        let cluster = try await Cluster()
        let ttl = Duration.milliseconds(800)
        let a = try await cluster.node(ttl: ttl)
        let client = ObjectClient(node: a.node)
        // `get` is idempotent, so an activation refused because a starved test run let the fresh claim
        // lapse is retried.
        #expect(try await CounterStub(client.reference("counter/p", deadline: .seconds(90))).get() == 0)
        let claimed = ContinuousClock.now
        // Cut off from the daemon: no renewal can succeed from now on.
        await try #require(cluster.daemon).close()
        // It checks every quarter ttl and gives up after half a ttl without a renewal: before the
        // lease runs out, unless the process itself is starved (a parallel test run can starve it
        // for seconds, so only giving up is asserted here; the store's epoch fence covers a late one).
        while await Self.active("counter/p", on: a) != nil {
            try await Task.sleep(for: .milliseconds(10))
            try #require(ContinuousClock.now - claimed < .seconds(60), "the node gave the object up")
        }
        await client.close()
        await cluster.shutdown()
    }

    @Test(arguments: Backend.available) func anObjectMovedWhileCalledLosesNoCallAndRunsNoneTwice(
        _ backend: Backend
    ) async throws {
        let cluster = try await Cluster(backend)
        let a = try await cluster.node()
        let b = try await cluster.node()
        let client = cluster.client()
        let counter = CounterStub(client.reference("counter/m", deadline: .seconds(90)))
        #expect(try await counter.increment(by: 1) == 1)
        let holder = try #require(client.binding(of: "counter/m"))
        let (source, target) = holder.port == a.port ? (a, b) : (b, a)

        let done = NIOLockedValueBox(0)
        let results = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var seen: [Int64] = []
                    for _ in 0..<25 {
                        seen.append(try await counter.increment(by: 1))
                        done.withLockedValue { $0 += 1 }
                    }
                    return seen
                }
            }
            group.addTask {
                while done.withLockedValue({ $0 }) < 20 { try await Task.sleep(for: .milliseconds(1)) }
                let wire = try await WireClient.connect(host: source.host, port: source.port)
                let moved = try await wire.call(
                    ObjectRelocate(object: "counter/m", host: target.host, port: target.port)
                ).decode(as: ObjectResult.self)
                await wire.close()
                guard case .forward(let binding) = moved.outcome else {
                    throw ErrorMessage(code: .malformed, message: "")
                }
                #expect(binding.port == target.port)
                return []
            }
            var all: [Int64] = []
            for try await seen in group { all += seen }
            return all
        }
        #expect(results.sorted() == Array(2...101), "every increment ran exactly once")
        #expect(try await counter.get() == 101)
        #expect(client.binding(of: "counter/m")?.port == target.port, "the stub re-bound by itself")
        #expect(await source.list().first { $0.object == "counter/m" }?.state == "moved to \(target.node)")
        await client.close()
        await cluster.shutdown()
    }

    @Test(arguments: Backend.available) func aMovedTransientObjectLeavesNoCopyBehind(_ backend: Backend) async throws {
        let cluster = try await Cluster(backend)
        let a = try await cluster.node(persistent: false)
        let b = try await cluster.node(persistent: false)
        let viaA = ObjectClient(node: a.node)
        let scratch = CounterStub(viaA.reference("scratch/moving", deadline: .seconds(90)))
        #expect(try await scratch.increment(by: 5) == 5)
        let wire = try await WireClient.connect(host: a.host, port: a.port)
        let moved = try await wire.call(ObjectRelocate(object: "scratch/moving", host: b.host, port: b.port))
            .decode(as: ObjectResult.self)
        await wire.close()
        guard case .forward(let binding) = moved.outcome else { throw ErrorMessage(code: .malformed, message: "") }
        #expect(binding.port == b.port)
        // A fresh client that asks the old node is sent on, to the one activation with the state.
        let fresh = ObjectClient(node: a.node)
        #expect(try await CounterStub(fresh.reference("scratch/moving", deadline: .seconds(90))).increment(by: 1) == 6)
        #expect(await Self.active("scratch/moving", on: a) == nil, "no second activation on the old node")
        #expect(await Self.active("scratch/moving", on: b) != nil)
        await fresh.close()
        await viaA.close()
        await cluster.shutdown()
    }

    @Test(arguments: Backend.available) func aTransientObjectFailsOverToAnotherNode(_ backend: Backend) async throws {
        let cluster = try await Cluster(backend)
        let a = try await cluster.node(persistent: false)
        let b = try await cluster.node(persistent: false)
        let client = cluster.client()
        let scratch = CounterStub(client.reference("scratch/x", deadline: .seconds(90)))
        #expect(try await scratch.increment(by: 3) == 3)
        let first = try #require(client.binding(of: "scratch/x"))
        let (gone, other) = first.port == a.port ? (a, b) : (b, a)
        await cluster.stop(gone)
        #expect(try await scratch.get() == 0, "an idempotent call goes on to the other node, where it starts afresh")
        #expect(client.binding(of: "scratch/x")?.port == other.port)

        let fresh = cluster.client()
        #expect(try await CounterStub(fresh.reference("scratch/x", deadline: .seconds(90))).increment(by: 1) == 1)
        await fresh.close()
        await client.close()
        await cluster.shutdown()
    }

    @Test func replicasAreCalledAsOneAndDivergenceIsReported() async throws {
        let cluster = try await Cluster()
        let node = try await cluster.node(persistent: false)
        let client = ObjectClient(node: node.node)
        let all = CounterStub(client.group("rep", replicas: 3, policy: .all, deadline: .seconds(90)))
        #expect(try await all.increment(by: 2) == 2)
        #expect(
            try await CounterStub(client.group("rep", replicas: 3, policy: .primary, deadline: .seconds(90))).get() == 2
        )
        #expect(
            try await CounterStub(client.group("rep", replicas: 3, policy: .any, deadline: .seconds(90))).get() == 2
        )

        _ = try await CounterStub(client.reference("rep/2", deadline: .seconds(90))).increment(by: 5)
        await #expect {
            try await all.get()
        } throws: { error in
            guard case .divergence(_, _, let answers) = error as? ObjectCallError else { return false }
            return answers == ["rep/1": "int(2)", "rep/2": "int(7)", "rep/3": "int(2)"]
        }
        await client.close()
        await cluster.shutdown()
    }

    @Test(arguments: Backend.available) func theCounterExampleWorksByName(_ backend: Backend) async throws {
        let cluster = try await Cluster(backend)
        _ = try await cluster.node()
        let client = cluster.client()
        #expect(try await CounterStub(client.reference("counter", deadline: .seconds(90))).increment(by: 2) == 2)
        await #expect {
            try await client.reference("nothing", deadline: .seconds(60)).invoke("get", [], idempotent: true)
        } throws: { error in
            (error as? ErrorMessage)?.code == .notFound && "\(error)".contains("hosts type 'nothing'")
        }
        await client.close()
        await cluster.shutdown()
    }
}
