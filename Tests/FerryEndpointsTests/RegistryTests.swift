import FerryEndpoints
import FerryTestSupport
import FerryWire
import Logging
import Testing

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
