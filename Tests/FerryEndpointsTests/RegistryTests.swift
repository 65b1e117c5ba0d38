import FerryTestSupport
import FerryWire
import Foundation
import Logging
import Testing

@testable import FerryEndpoints

/// One suite, two backends: the rules every ``Registry`` keeps, run against the embedded
/// endpoint daemon and against a real three-member etcd cluster.
enum RegistryBehaviour {
    static let web = [ServiceEndpoint(host: "127.0.0.1", port: 8080)]
    static let other = [ServiceEndpoint(host: "127.0.0.1", port: 8081)]
    /// Long enough that no lease runs out while a loaded machine runs the test.
    static let ttl = Duration.seconds(120)

    static func code(of error: any Error) -> ErrorMessage.Code? { (error as? ErrorMessage)?.code }

    static func registersLooksUpListsAndDeregisters(_ registry: any Registry) async throws {
        let lease = try await registry.register(
            "web",
            endpoints: web,
            metadata: ["model": "event-driven"],
            ttl: ttl
        )
        _ = try await registry.register("web-control", endpoints: other, metadata: [:], ttl: ttl)
        let found = try await registry.lookup("web")
        #expect(found.map(\.endpoints) == [web] && found.first?.leaseID == lease.leaseID)
        #expect(found.first?.metadata == ["model": "event-driven"])
        #expect(try await registry.list(prefix: "").map(\.name) == ["web", "web-control"])
        #expect(try await registry.list(prefix: "web-").map(\.name) == ["web-control"])
        await #expect(throws: ErrorMessage(code: .notFound, message: "no service is registered as 'nobody'")) {
            try await registry.lookup("nobody")
        }
        try await registry.deregister(lease)
        await #expect { try await registry.lookup("web") } throws: { code(of: $0) == .notFound }
    }

    static func theSameEndpointsReplaceTheirEarlierRegistration(_ registry: any Registry) async throws {
        let first = try await registry.register("web", endpoints: web, metadata: [:], ttl: ttl)
        let second = try await registry.register("web", endpoints: web, metadata: ["v": "2"], ttl: ttl)
        let found = try await registry.lookup("web")
        #expect(found.map(\.leaseID) == [second.leaseID] && found.first?.metadata == ["v": "2"])
        await #expect { try await registry.renew(first, timeout: .seconds(5)) } throws: { code(of: $0) == .notHeld }
        #expect(try await registry.renew(second, timeout: .seconds(5)).ttlMilliseconds >= 120_000)
    }

    static func anExclusiveNameIsHeldUntilTakenOver(_ registry: any Registry) async throws {
        let claim = [EndpointTable.exclusiveKey: "true"]
        let holder = try await registry.register("objects/counter", endpoints: web, metadata: claim, ttl: ttl)
        await #expect {
            try await registry.register("objects/counter", endpoints: other, metadata: claim, ttl: ttl)
        } throws: {
            code(of: $0) == .held && "\($0)".contains("127.0.0.1:8080")
        }
        #expect(
            try await registry.lookup("objects/counter").map(\.leaseID) == [holder.leaseID],
            "the refused left nothing"
        )

        var takeover = claim
        takeover[EndpointTable.takeoverKey] = String(holder.leaseID)
        let next = try await registry.register(
            "objects/counter",
            endpoints: other,
            metadata: takeover,
            ttl: ttl
        )
        let found = try await registry.lookup("objects/counter")
        #expect(found.map(\.leaseID) == [next.leaseID] && found.first?.endpoints == other)
        await #expect(
            "the old holder learns at its next renewal"
        ) { try await registry.renew(holder, timeout: .seconds(5)) } throws: { code(of: $0) == .notHeld }
    }

    static func aGivenUpLeaseCannotBeRenewedOrGivenUpAgain(_ registry: any Registry) async throws {
        let lease = try await registry.register("web", endpoints: web, metadata: [:], ttl: ttl)
        try await registry.deregister(lease)
        await #expect { try await registry.renew(lease, timeout: .seconds(5)) } throws: { code(of: $0) == .notHeld }
        await #expect { try await registry.deregister(lease) } throws: { code(of: $0) == .notHeld }
    }

    static func aWatchSeesARegistrationComeAndGo(_ registry: any Registry) async throws {
        var changes = registry.watch("web").makeAsyncIterator()
        #expect(try await changes.next()?.entries.isEmpty == true, "nothing registered yet")
        let lease = try await registry.register("web", endpoints: web, metadata: [:], ttl: ttl)
        let added = try #require(try await changes.next())
        #expect(added.entries.map(\.leaseID) == [lease.leaseID])
        try await registry.deregister(lease)
        let removed = try #require(try await changes.next())
        #expect(removed.entries.isEmpty && removed.revision > added.revision)
    }
}

@Suite struct DaemonRegistryTests {
    private func withRegistry(_ body: (any Registry) async throws -> Void) async throws {
        var logger = Logger(label: "test.registry")
        logger.logLevel = .warning
        let daemon = try await EndpointDaemon.bind(host: "127.0.0.1", port: 0, logger: logger)
        let client = try await EndpointClient.connect(host: "127.0.0.1", port: daemon.port, logger: logger)
        try await body(client)
        await client.close()
        await daemon.close()
    }

    @Test func registersLooksUpListsAndDeregisters() async throws {
        try await self.withRegistry(RegistryBehaviour.registersLooksUpListsAndDeregisters)
    }
    @Test func theSameEndpointsReplaceTheirEarlierRegistration() async throws {
        try await self.withRegistry(RegistryBehaviour.theSameEndpointsReplaceTheirEarlierRegistration)
    }
    @Test func anExclusiveNameIsHeldUntilTakenOver() async throws {
        try await self.withRegistry(RegistryBehaviour.anExclusiveNameIsHeldUntilTakenOver)
    }
    @Test func aGivenUpLeaseCannotBeRenewedOrGivenUpAgain() async throws {
        try await self.withRegistry(RegistryBehaviour.aGivenUpLeaseCannotBeRenewedOrGivenUpAgain)
    }
    @Test func aWatchSeesARegistrationComeAndGo() async throws {
        try await self.withRegistry(RegistryBehaviour.aWatchSeesARegistrationComeAndGo)
    }
}

@Suite(.serialized, .enabled(if: EtcdCluster.binary != nil, "\(EtcdCluster.missing)"))
struct EtcdRegistryTests {
    /// The test process's cluster, each test under a root of its own.
    private func withRegistry(_ body: (any Registry) async throws -> Void) async throws {
        let cluster = try EtcdCluster.shared()
        let root = "/ferry-test/\(UInt64.random(in: 0...UInt64.max))/"
        try await body(EtcdRegistry(try #require(EtcdClient(url: cluster.url)), root: root))
    }

    @Test func registersLooksUpListsAndDeregisters() async throws {
        try await self.withRegistry(RegistryBehaviour.registersLooksUpListsAndDeregisters)
    }
    @Test func theSameEndpointsReplaceTheirEarlierRegistration() async throws {
        try await self.withRegistry(RegistryBehaviour.theSameEndpointsReplaceTheirEarlierRegistration)
    }
    @Test func anExclusiveNameIsHeldUntilTakenOver() async throws {
        try await self.withRegistry(RegistryBehaviour.anExclusiveNameIsHeldUntilTakenOver)
    }
    @Test func aGivenUpLeaseCannotBeRenewedOrGivenUpAgain() async throws {
        try await self.withRegistry(RegistryBehaviour.aGivenUpLeaseCannotBeRenewedOrGivenUpAgain)
    }
    @Test func aWatchSeesARegistrationComeAndGo() async throws {
        try await self.withRegistry(RegistryBehaviour.aWatchSeesARegistrationComeAndGo)
    }
}

/// What a registration on etcd takes the place of, decided from the keys its name holds.
@Suite struct EtcdRegistrationPlanTests {
    private struct Stored: Codable {
        var endpoints: [ServiceEndpoint]
        var metadata: [String: String] = [:]
        var ttlMilliseconds: UInt32 = 120_000
    }

    private func held(_ endpoints: [ServiceEndpoint], lease: Int64) throws -> EtcdKeyValue {
        let value = try JSONEncoder().encode(Stored(endpoints: endpoints))
        return EtcdKeyValue(
            key: Array("web\0\(lease)".utf8),
            value: Array(value),
            createRevision: 5,
            modRevision: 5,
            lease: lease
        )
    }

    private func displaced(
        _ current: [EtcdKeyValue],
        exclusive: Bool = false,
        takeover: Int64? = nil
    ) throws
        -> [EtcdKeyValue]?
    {
        try EtcdRegistry.displaced(
            from: current,
            by: 42,
            name: "web",
            endpoints: RegistryBehaviour.web,
            exclusive: exclusive,
            takeover: takeover
        )
    }

    @Test func anAttemptWhoseAnswerWasLostIsNotWrittenAgain() throws {
        // A member timed out after committing and the transaction went to another, which found
        // the range changed: the key under the registration's own lease is that commit.
        let own = try self.held(RegistryBehaviour.web, lease: 42)
        let earlier = try self.held(RegistryBehaviour.web, lease: 7)
        #expect(try self.displaced([own]) == nil)
        #expect(try self.displaced([own], exclusive: true) == nil)
        #expect(try self.displaced([earlier]) == [earlier], "the same service registering again")
    }

    @Test func anExclusiveClaimDisplacesOnlyTheHolderItTakesOver() throws {
        let holder = try self.held(RegistryBehaviour.other, lease: 7)
        #expect(try self.displaced([holder]) == [], "a shared name keeps its other holders")
        #expect(try self.displaced([holder], exclusive: true, takeover: 7) == [holder])
        #expect { try self.displaced([holder], exclusive: true, takeover: 8) } throws: {
            "\($0)".contains("is held by 127.0.0.1:8081")
        }
    }
}
