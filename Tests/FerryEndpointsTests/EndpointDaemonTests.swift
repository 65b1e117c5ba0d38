import FerryEndpoints
import FerryTestSupport
import FerryWire
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

/// The daemon over real sockets on port 0.
@Suite struct EndpointDaemonTests {
    static let logger: Logger = {
        var logger = Logger(label: "test.endpointd")
        logger.logLevel = .warning
        return logger
    }()

    static func daemon(port: Int = 0) async throws -> EndpointDaemon {
        try await EndpointDaemon.bind(host: "127.0.0.1", port: port, logger: Self.logger)
    }

    static func client(_ daemon: EndpointDaemon) async throws -> EndpointClient {
        try await EndpointClient.connect(host: "127.0.0.1", port: daemon.port, logger: Self.logger)
    }

    /// Waits for the first answer of a watch that satisfies `condition`.
    static func first(
        _ watch: AsyncThrowingStream<EndpointEntries, any Error>,
        where condition: (EndpointEntries) -> Bool
    ) async throws -> EndpointEntries? {
        for try await entries in watch where condition(entries) { return entries }
        return nil
    }

    let web = [ServiceEndpoint(host: "127.0.0.1", port: 8080)]

    @Test func servicesRegisterAndClientsLookThemUpAndListThem() async throws {
        let daemon = try await Self.daemon()
        let client = try await Self.client(daemon)
        let lease = try await client.register(
            "web",
            endpoints: self.web,
            metadata: ["model": "event-driven"],
            ttl: .seconds(30)
        )
        _ = try await client.register(
            "web-control",
            endpoints: [.init(host: "127.0.0.1", port: 8081)],
            ttl: .seconds(30)
        )
        let found = try await client.lookup("web")
        #expect(found.map(\.endpoints) == [self.web])
        #expect(found.first?.metadata == ["model": "event-driven"])
        #expect(found.first?.leaseID == lease.leaseID)
        #expect(try await client.list().map(\.name) == ["web", "web-control"])
        #expect(try await client.list(prefix: "web-").map(\.name) == ["web-control"])
        await #expect(throws: ErrorMessage(code: .notFound, message: "no service is registered as 'nobody'")) {
            try await client.lookup("nobody")
        }
        try await client.deregister(lease)
        await #expect(throws: ErrorMessage.self) { try await client.lookup("web") }
        await client.close()
        await daemon.close()
    }

    @Test func watchersArePushedEachChangeIncludingALeaseRunningOut() async throws {
        let daemon = try await Self.daemon()
        let watcher = try await Self.client(daemon)
        let service = try await Self.client(daemon)
        var changes = watcher.watch("web").makeAsyncIterator()

        let initial = try await changes.next()
        #expect(initial?.entries.isEmpty == true)
        // Registered with the shortest lease and never renewed: it must vanish on its own.
        let lease = try await service.register("web", endpoints: self.web, ttl: .milliseconds(200))
        let registered = try await changes.next()
        #expect(registered?.entries.map(\.leaseID) == [lease.leaseID])
        let expired = try await changes.next()
        #expect(expired?.entries.isEmpty == true)
        #expect(expired!.revision > registered!.revision)
        await #expect(throws: ErrorMessage.self) { try await service.renew(lease) }

        await watcher.close()
        await service.close()
        await daemon.close()
    }

    @Test func aRestartedDaemonRefillsWithinOneRenewalInterval() async throws {
        let first = try await Self.daemon()
        let port = first.port
        let registration = LeasedRegistration(
            name: "web",
            endpoints: self.web,
            ttl: .milliseconds(900),
            daemonPort: port,
            logger: Self.logger
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await registration.run() }

            let before = try await Self.client(first)
            #expect(try await Self.first(before.watch("web")) { !$0.entries.isEmpty } != nil)
            await before.close()
            await first.close()

            // Same well-known port, empty table: the service's next renewal finds its lease gone
            // and registers again.
            let second = try await Self.daemon(port: port)
            let roundsBefore = registration.renewalRounds
            let after = try await Self.client(second)
            let refilled = try await Self.first(after.watch("web")) { !$0.entries.isEmpty }
            #expect(refilled?.entries.first?.endpoints == self.web)
            // Within one renewal interval: the first renewal round after the restart registers
            // again (counted in rounds, not seconds, so a loaded machine cannot fail the test).
            let rounds = registration.renewalRounds - roundsBefore
            #expect(rounds <= 1, "refilled after \(rounds) renewal rounds")

            group.cancelAll()
            await after.close()
            await second.close()
        }
    }

    @Test func renewingALeaseTheCallerDoesNotHoldIsRefused() async throws {
        let daemon = try await Self.daemon()
        let client = try await Self.client(daemon)
        let real = try await client.register("web", endpoints: self.web, ttl: .seconds(30))
        for forged in [
            EndpointLease(name: "web", leaseID: real.leaseID &+ 1, ttlMilliseconds: 0),
            EndpointLease(name: "other", leaseID: real.leaseID, ttlMilliseconds: 0),
        ] {
            do {
                _ = try await client.renew(forged)
                Issue.record("renewed a forged lease")
            } catch let error as ErrorMessage {
                #expect(error.code == .notHeld)
            }
        }
        // The real holder is untouched.
        #expect(try await client.renew(real).leaseID == real.leaseID)
        await client.close()
        await daemon.close()
    }

    struct UnknownMessage: WireMessage {
        static let kind = MessageKind(rawValue: 0x7E)
        init() {}
        init(from payload: inout ByteBuffer) throws {}
        func encode(into payload: inout ByteBuffer) {}
    }

    /// A register payload cut short after the name's length.
    struct TruncatedRegister: WireMessage {
        static let kind = MessageKind.endpointRegister
        init() {}
        init(from payload: inout ByteBuffer) throws {}
        func encode(into payload: inout ByteBuffer) { payload.writeInteger(UInt32(200)) }
    }

    @Test func badRequestsGetAClearErrorAndTheConnectionCarriesOn() async throws {
        let daemon = try await Self.daemon()
        let wire = try await WireClient.connect(host: "127.0.0.1", port: daemon.port)
        let unknown = try await wire.call(UnknownMessage())
        #expect(throws: ErrorMessage.self) { try unknown.decode(as: EndpointEntries.self) }
        #expect((try? unknown.decode(as: ErrorMessage.self))?.code == .unknownKind)

        let truncated = try await wire.call(TruncatedRegister())
        let truncatedError = try truncated.decode(as: ErrorMessage.self)
        #expect(truncatedError.code == .malformed)
        #expect(truncatedError.message.contains("name"))

        let longName = String(repeating: "x", count: 10_000)
        let oversized = try await wire.call(RegisterRequest(name: longName, endpoints: self.web, ttlMilliseconds: 1000))
        #expect(try oversized.decode(as: ErrorMessage.self).code == .tooLarge)
        let oversizedLookup = try await wire.call(LookupRequest(name: longName))
        #expect(try oversizedLookup.decode(as: ErrorMessage.self).code == .tooLarge)

        // Same connection, still served.
        let lease = try await wire.call(RegisterRequest(name: "web", endpoints: self.web, ttlMilliseconds: 5000))
        #expect(try lease.decode(as: EndpointLease.self).name == "web")
        await wire.close()
        await daemon.close()
    }

    @Test func garbageClosesThatConnectionOnlyAndWatchersOfOthersKeepGettingChanges() async throws {
        let daemon = try await Self.daemon()
        let watcher = try await Self.client(daemon)
        var changes = watcher.watch("web").makeAsyncIterator()
        _ = try await changes.next()

        let garbage = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: daemon.port).get()
        try await garbage.writeAndFlush(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        try await garbage.closeFuture.get()  // the daemon hangs up on it

        let service = try await Self.client(daemon)
        _ = try await service.register("web", endpoints: self.web, ttl: .seconds(5))
        #expect(try await changes.next()?.entries.count == 1)
        await service.close()
        await watcher.close()
        await daemon.close()
    }

    @Test func aCallToAStoppedDaemonFailsWithTheAddress() async throws {
        let closed = try ClosedPort()
        do {
            _ = try await EndpointClient.connect(host: "127.0.0.1", port: closed.port)
            Issue.record("connected to a closed port")
        } catch let error as WireClientError {
            #expect("\(error)".contains("127.0.0.1:\(closed.port)"))
        }
    }
}
