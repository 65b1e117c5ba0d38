import FerryEndpoints
import FerryWire
import Testing

struct EndpointTableTests {
    let second: UInt64 = 1_000_000_000
    let web = [ServiceEndpoint(host: "127.0.0.1", port: 8080)]

    func register(
        _ table: inout EndpointTable,
        _ name: String = "web",
        ttl: UInt32 = 3000,
        now: UInt64 = 0
    ) throws
        -> EndpointLease
    {
        try table.register(RegisterRequest(name: name, endpoints: self.web, ttlMilliseconds: ttl), now: now)
    }

    @Test func aLeaseKeepsAnEntryUntilItRunsOut() throws {
        var table = EndpointTable(firstLeaseID: 100)
        let lease = try self.register(&table, now: 0)
        #expect(lease.leaseID == 101)
        #expect(table.entries(named: "web", now: 2 * self.second).map(\.endpoints) == [self.web])
        #expect(table.expire(now: 2 * self.second).isEmpty)
        #expect(table.expire(now: 3 * self.second) == ["web"])
        #expect(table.entries(named: "web", now: 3 * self.second).isEmpty)
        #expect(table.registrationCount == 0)
    }

    @Test func renewingExtendsTheLeaseByItsFullTTL() throws {
        var table = EndpointTable()
        let lease = try self.register(&table, now: 0)
        _ = try table.renew(name: "web", leaseID: lease.leaseID, now: 2 * self.second)
        #expect(table.expire(now: 4 * self.second).isEmpty)
        #expect(table.entries(named: "web", now: 4 * self.second).first?.remainingMilliseconds == 1000)
        #expect(table.expire(now: 5 * self.second) == ["web"])
    }

    @Test func aLeaseThatRanOutOrWasNeverGrantedCannotBeRenewed() throws {
        var table = EndpointTable()
        let lease = try self.register(&table, now: 0)
        #expect(throws: ErrorMessage.self) {
            try table.renew(name: "web", leaseID: lease.leaseID, now: 3 * self.second)
        }
        let other = try self.register(&table, "db", now: 0)
        // Another name's lease, an unknown id: both are "not held", with a sentence that says what to do.
        for (name, id) in [("web", other.leaseID), ("web", 12345), ("nobody", lease.leaseID)] {
            do {
                _ = try table.renew(name: name, leaseID: id, now: 0)
                Issue.record("renewed lease \(id) on \(name)")
            } catch let error as ErrorMessage {
                #expect(error.code == .notHeld)
                #expect(error.message.contains("register again"))
            }
        }
    }

    @Test func registeringTheSameEndpointsAgainReplacesTheEntry() throws {
        var table = EndpointTable()
        let first = try self.register(&table, now: 0)
        let second = try self.register(&table, now: 1)
        #expect(first.leaseID != second.leaseID)
        #expect(table.entries(named: "web", now: 1).map(\.leaseID) == [second.leaseID])
        let elsewhere = RegisterRequest(
            name: "web",
            endpoints: [.init(host: "127.0.0.1", port: 9090)],
            ttlMilliseconds: 3000
        )
        _ = try table.register(elsewhere, now: 2)
        #expect(table.entries(named: "web", now: 2).count == 2)
    }

    @Test func deregisterRemovesAtOnceAndEveryChangeBumpsTheRevision() throws {
        var table = EndpointTable()
        let lease = try self.register(&table)
        let revision = table.revision
        _ = try table.deregister(name: "web", leaseID: lease.leaseID)
        #expect(table.revision == revision + 1)
        #expect(table.entries(named: "web", now: 0).isEmpty)
        #expect(throws: ErrorMessage.self) { try table.deregister(name: "web", leaseID: lease.leaseID) }
    }

    @Test func listingFiltersByPrefixInNameOrder() throws {
        var table = EndpointTable()
        for name in ["kv", "files-control", "files"] { _ = try self.register(&table, name) }
        #expect(table.entries(prefix: "files", now: 0).map(\.name) == ["files", "files-control"])
        #expect(table.entries(prefix: "", now: 0).map(\.name) == ["files", "files-control", "kv"])
    }

    @Test func ttlsAreClampedToTheDaemonsRange() throws {
        var table = EndpointTable()
        #expect(try self.register(&table, ttl: 1).ttlMilliseconds == EndpointLimits.minTTLMilliseconds)
        #expect(try self.register(&table, ttl: .max).ttlMilliseconds == EndpointLimits.maxTTLMilliseconds)
    }

    @Test func oversizedOrMalformedRegistrationsAreRefusedWithAReason() throws {
        var table = EndpointTable()
        let cases: [(RegisterRequest, ErrorMessage.Code)] = [
            (
                RegisterRequest(name: String(repeating: "n", count: 300), endpoints: self.web, ttlMilliseconds: 1000),
                .tooLarge
            ),
            (RegisterRequest(name: "", endpoints: self.web, ttlMilliseconds: 1000), .malformed),
            (RegisterRequest(name: "two words", endpoints: self.web, ttlMilliseconds: 1000), .malformed),
            (RegisterRequest(name: "web", endpoints: [], ttlMilliseconds: 1000), .malformed),
            (RegisterRequest(name: "web", endpoints: [.init(host: "h", port: 0)], ttlMilliseconds: 1000), .malformed),
            (
                RegisterRequest(
                    name: "web",
                    endpoints: self.web,
                    metadata: ["k": String(repeating: "v", count: 5000)],
                    ttlMilliseconds: 1000
                ), .tooLarge
            ),
        ]
        for (request, code) in cases {
            do {
                _ = try table.register(request, now: 0)
                Issue.record("accepted \(request.name.prefix(20))")
            } catch let error as ErrorMessage {
                #expect(error.code == code, "\(error)")
            }
        }
        #expect(table.registrationCount == 0)
    }

    @Test func endpointsParseFromHostPort() {
        #expect(ServiceEndpoint("127.0.0.1:80") == ServiceEndpoint(host: "127.0.0.1", port: 80))
        #expect(ServiceEndpoint("[::1]:7411") == ServiceEndpoint(host: "::1", port: 7411))
        #expect(ServiceEndpoint("[::1]:7411")?.description == "[::1]:7411")
        for bad in ["", "host", ":80", "host:0", "host:70000", "host:http"] { #expect(ServiceEndpoint(bad) == nil) }
    }
}
