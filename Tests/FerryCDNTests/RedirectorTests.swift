import FerryConfiguration
import FerryHTTP
import FerryTestSupport
import Foundation
import Testing

@testable import FerryCDN

/// The redirector in front of two real edges (east on 127.0.0.2, west on 127.0.0.3), asked by
/// DNS over UDP and TCP and by HTTP.
@Suite(.serialized) struct RedirectorTests {
    struct Bench {
        let origin: TestOrigin
        let east: EdgeServer
        let west: EdgeServer
        let redirector: Redirector

        static func start(checkInterval: String = "0.2") async throws -> Bench {
            let origin = try await TestOrigin.start()
            var edges: [EdgeServer] = []
            for address in ["127.0.0.2", "127.0.0.3"] {
                var configuration = EdgeServer.Configuration(
                    origin: OriginAddress(host: "127.0.0.1", port: origin.port)
                )
                configuration.host = address
                edges.append(try await EdgeServer.bind(configuration, logger: TestLog.logger("edge")))
            }
            let redirector = try await Self.redirector(
                east: edges[0].address,
                west: edges[1].address,
                origin: origin.port,
                interval: checkInterval
            )
            // The checks every interval; the first round ran in start. On a loaded machine (the
            // suites run side by side) that round can time out, and a later one finds the edge:
            // the tests of the policy start once both edges are up.
            Task { try await redirector.run() }
            let up = await eventually(within: .seconds(30)) {
                redirector.core.snapshot.health.values.filter(\.up).count == 2
            }
            guard up else { throw TestFailure("the edges were not both up within 30 s") }
            return Bench(origin: origin, east: edges[0], west: edges[1], redirector: redirector)
        }

        /// Runs checks by hand until `edge` is up: the first, in start, unless a loaded machine
        /// made it late.
        static func checkedUp(_ redirector: Redirector, _ edge: String) async -> Bool {
            let up = { redirector.core.snapshot.health[edge]?.up == true }
            return await eventually(within: .seconds(30)) {
                if !up() { await redirector.core.checkEdges() }
                return up()
            }
        }

        /// A redirector over the two edges, on loopback, its HTTP and DNS ports picked free.
        static func redirector(
            east: some CustomStringConvertible,
            west: some CustomStringConvertible,
            origin: Int,
            interval: String
        ) async throws -> Redirector {
            let configuration = try RedirectorConfiguration.parse(
                Self.configuration(east: east, west: west, origin: origin, interval: interval)
            )
            return try await Redirector.start(
                configuration,
                host: "127.0.0.1",
                port: 0,
                dnsPort: 0,
                logger: TestLog.logger("redirector")
            )
        }

        static func configuration(
            east: some CustomStringConvertible,
            west: some CustomStringConvertible,
            origin: Int,
            interval: String
        ) -> String {
            """
            zone: cdn.test
            origin: http://127.0.0.1:\(origin)
            ttl: 5
            check_interval: \(interval)
            regions:
              east: {networks: [127.0.0.0/24, 10.1.0.0/16]}
              west: {networks: [10.2.0.0/16]}
            distances: {east: {west: 70}}
            edges:
              - {name: e1, region: east, address: \(east), capacity: 1000}
              - {name: e2, region: west, address: \(west), capacity: 1000}
            trusted_proxies: [127.0.0.1/32]
            """
        }

        /// Asks over UDP; the answer parsed.
        func ask(_ query: [UInt8]) throws -> DNSMessage {
            let client = try TestClient(port: self.redirector.dnsAddress.port, timeout: 5, udp: true)
            client.send(query)
            let answer = client.datagram()
            return try DNSMessage.parse(answer)
        }

        /// Asks over TCP, the message behind its two-byte length.
        func askOverTCP(_ query: [UInt8]) throws -> DNSMessage {
            let client = try TestClient(port: self.redirector.dnsAddress.port, timeout: 5)
            client.send([UInt8(query.count >> 8), UInt8(query.count & 0xff)] + query)
            let length = client.receive(2)
            guard length.count == 2 else { throw TestFailure("no length from the TCP side") }
            let size = Int(length[0]) << 8 | Int(length[1])
            var answer: [UInt8] = []
            while answer.count < size {
                let part = client.receive(size - answer.count)
                if part.isEmpty { break }
                answer += part
            }
            return try DNSMessage.parse(answer)
        }

        func stop() async {
            await self.redirector.close()
            await self.east.close()
            await self.west.close()
            await self.origin.stop()
        }
    }

    /// A query as dig sends it: one question, recursion desired, and an OPT record (1232 bytes)
    /// carrying a client subnet when given.
    static func query(
        _ name: String,
        type: UInt16 = 1,
        id: UInt16 = 0x1234,
        subnet: (UInt8, UInt8, UInt8, UInt8)? = nil,
        prefix: UInt8 = 24,
        padding: Int = 0
    )
        -> [UInt8]
    {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xff), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]
        for label in name.split(separator: ".") {
            bytes.append(UInt8(label.utf8.count))
            bytes += Array(label.utf8)
        }
        bytes += [0, UInt8(type >> 8), UInt8(type & 0xff), 0, 1]
        var options: [UInt8] = []
        if let subnet {
            let address = [subnet.0, subnet.1, subnet.2, subnet.3].prefix(Int((prefix + 7) / 8))
            options = [0, 8, 0, UInt8(4 + address.count), 0, 1, prefix, 0] + address
        }
        if padding > 0 {
            // RFC 7830 padding, as privacy-minded resolvers send it: the query grows past a small datagram.
            options += [0, 12, UInt8(padding >> 8), UInt8(padding & 0xff)] + [UInt8](repeating: 0, count: padding)
        }
        bytes += [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, UInt8(options.count >> 8), UInt8(options.count & 0xff)] + options
        return bytes
    }

    static func addresses(_ message: DNSMessage) -> [String] {
        message.answers.compactMap { record in
            if case .a(let bytes) = record.data { return "\(bytes.0).\(bytes.1).\(bytes.2).\(bytes.3)" }
            return nil
        }
    }

    @Test func dnsSendsEachClientToTheNearestEdgeByItsSubnetAndSaysTheScope() async throws {
        // A long interval: the first round of checks (in start) waits up to half of it, so a
        // loaded machine does not find the edges down (a CI failure with 0.2 s).
        let bench = try await Bench.start(checkInterval: "2")
        let east = try bench.ask(Self.query("www.cdn.test", subnet: (10, 1, 2, 0)))
        #expect(east.header.rcode == .noError)
        #expect(east.header.authoritative)
        #expect(Self.addresses(east) == ["127.0.0.2"])
        #expect(east.answers.first?.ttl == 5)
        #expect(east.edns?.clientSubnet?.scopePrefixLength == 16)
        let west = try bench.ask(Self.query("WWW.cdn.test", subnet: (10, 2, 9, 0), padding: 400))
        #expect(Self.addresses(west) == ["127.0.0.3"])
        // Without a subnet, the source address (127.0.0.1, east) decides; over TCP alike.
        #expect(Self.addresses(try bench.askOverTCP(Self.query("www.cdn.test"))) == ["127.0.0.2"])
        await bench.stop()
    }

    @Test func dnsAnswersTheZoneAsAnAuthorityDoes() async throws {
        let bench = try await Bench.start()
        let soa = try bench.ask(Self.query("cdn.test", type: 6))
        #expect(soa.header.rcode == .noError && soa.answers.count == 1)
        let missing = try bench.ask(Self.query("nope.cdn.test"))
        #expect(missing.header.rcode == .nxDomain)
        #expect(missing.authority.count == 1, "NXDOMAIN carries the SOA for negative caching")
        let elsewhere = try bench.ask(Self.query("example.com"))
        #expect(elsewhere.header.rcode == .refused)
        let edgeByName = try bench.ask(Self.query("e2.cdn.test"))
        #expect(Self.addresses(edgeByName) == ["127.0.0.3"])
        #expect(Self.addresses(try bench.ask(Self.query("ns.cdn.test"))) == ["127.0.0.1"], "the SOA's name server")
        let noAAAA = try bench.ask(Self.query("www.cdn.test", type: 28))
        #expect(noAAAA.header.rcode == .noError && noAAAA.answers.isEmpty)
        await bench.stop()
    }

    @Test func hostilePacketsGetFormErrOrNothingAndTheServerAnswersOn() async throws {
        let bench = try await Bench.start()
        let client = try TestClient(port: bench.redirector.dnsAddress.port, timeout: 5, udp: true)
        // A compression pointer to itself in the question.
        client.send([0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1])
        let loop = try DNSMessage.parse(client.datagram())
        #expect(loop.header.id == 0xabcd && loop.header.rcode == .formErr)
        // Shorter than a header: no answer at all; then a good query is still answered.
        client.send([1, 2, 3])
        client.send(Self.query("www.cdn.test", id: 7))
        let after = try DNSMessage.parse(client.datagram())
        // Which edge it names is the policy's matter (tested above); here, that it answers at all.
        #expect(after.header.id == 7 && after.header.rcode == .noError && Self.addresses(after).count == 1)
        // A 64 KiB message over TCP.
        let big = try bench.askOverTCP(
            [0x00, 0x09, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 63, count: 65_000)
        )
        #expect(big.header.rcode == .formErr)
        await bench.stop()
    }

    @Test func httpRedirectsToTheEdgeForTheClientAndBelievesOnlyTrustedProxies() async throws {
        let bench = try await Bench.start()
        let client = try TestClient(port: bench.redirector.address.port)
        let direct = try #require(client.fetch("/a/b.txt?x=1"))
        #expect(direct.status == 302)
        #expect(direct.header("Location") == "http://\(bench.east.address)/a/b.txt?x=1")
        let forwarded = try #require(client.fetch("/a", headers: "X-Forwarded-For: 10.2.0.9\r\n"))
        #expect(forwarded.header("Location") == "http://\(bench.west.address)/a")
        await bench.stop()
    }

    @Test func aFailedEdgeLeavesTheAnswersWithinACheckAndTheNextRegionTakesOver() async throws {
        let bench = try await Bench.start()
        #expect(Self.addresses(try bench.ask(Self.query("www.cdn.test", subnet: (10, 1, 0, 0)))) == ["127.0.0.2"])
        await bench.east.close()
        let clock = ContinuousClock()
        let start = clock.now
        let movedOver = await eventually(within: .seconds(60)) {
            (try? Self.addresses(bench.ask(Self.query("www.cdn.test", subnet: (10, 1, 0, 0))))) == ["127.0.0.3"]
        }
        #expect(movedOver)
        // One interval is 0.2 s; allow the check's own timeout and a loaded machine (a parallel
        // run starved it to 3.5 s once): the bound only says it happens within checks, not a ttl.
        #expect(clock.now - start < .seconds(30))
        await bench.west.close()
        let origin = try await eventually {
            let client = try TestClient(port: bench.redirector.address.port)
            return client.fetch("/x")?.header("Location") == "http://127.0.0.1:\(bench.origin.port)/x"
        }
        #expect(origin, "with every edge down, the origin answers")
        await bench.redirector.close()
        await bench.origin.stop()
    }

    @Test func anEdgeIsAnsweredOnlyAfterItsFirstCheckPasses() async throws {
        let origin = try await TestOrigin.start()
        // Nothing listens at e1's address yet.
        let redirector = try await Bench.redirector(
            east: "127.0.0.2:1",
            west: "127.0.0.3:1",
            origin: origin.port,
            interval: "0.2"
        )
        let client = try TestClient(port: redirector.address.port)
        #expect(client.fetch("/y")?.header("Location") == "http://127.0.0.1:\(origin.port)/y")
        let lines = redirector.explain(client: IPAddress("10.1.2.3"), path: "/y")
        #expect(lines.contains { $0.contains("e1") && $0.contains("down") })
        await redirector.close()
        await origin.stop()
    }

    @Test func anEdgeSilentOnceStaysAndSilentTwiceInARowIsOut() async throws {
        // The edge is an origin the test drives; the checks are run by hand, not by run().
        let edge = try await TestOrigin.start()
        let status: [UInt8] = Array(#"{"load": 3, "hit_ratio": 0.5}"#.utf8)
        edge.set(EdgeServer.statusPath, .answer(status: 200, headers: [], body: status))
        let redirector = try await Bench.redirector(
            east: "127.0.0.1:\(edge.port)",
            west: "127.0.0.3:1",
            origin: edge.port,
            interval: "1"
        )
        let up = { redirector.core.snapshot.health["e1"]?.up == true }
        func checkedUp() async -> Bool { await Bench.checkedUp(redirector, "e1") }
        #expect(await checkedUp())
        edge.set(EdgeServer.statusPath, .silent)
        await redirector.core.checkEdges()
        #expect(up(), "one late answer keeps the edge")
        #expect(redirector.core.snapshot.health["e1"]?.load == 3, "with the figures it last reported")
        await redirector.core.checkEdges()
        #expect(!up(), "a second one in a row takes it out")
        edge.set(EdgeServer.statusPath, .answer(status: 200, headers: [], body: status))
        #expect(await checkedUp())
        // A refusal takes it out at once.
        edge.set(EdgeServer.statusPath, .answer(status: 503, headers: [], body: []))
        await redirector.core.checkEdges()
        #expect(!up())
        await redirector.close()
        await edge.stop()
    }

    /// An edge closes the redirector's held connection at its header timeout, as it closes any
    /// client that sends nothing: the redirector connects again and the edge stays in the
    /// answers; only a connection refused (no process listens) takes it out.
    @Test func anEdgeThatClosesTheHeldConnectionAtItsTimeoutStaysUp() async throws {
        let origin = try await TestOrigin.start()
        var configuration = EdgeServer.Configuration(origin: OriginAddress(host: "127.0.0.1", port: origin.port))
        configuration.host = "127.0.0.2"
        configuration.clientTimeouts = ClientTimeouts(header: .milliseconds(200))
        let edge = try await EdgeServer.bind(configuration, logger: TestLog.logger("edge"))
        // Checks are run by hand: from the first that passes, only the held connection can take
        // the edge out.
        let redirector = try await Bench.redirector(
            east: edge.address,
            west: "127.0.0.3:1",
            origin: origin.port,
            interval: "60"
        )
        let up = { redirector.core.snapshot.health["e1"]?.up == true }
        #expect(await Bench.checkedUp(redirector, "e1"))
        let renewed = await eventually { redirector.core.watch.renewals(of: "e1") >= 3 }
        #expect(renewed, "the edge closed the held connection three times, and it was made again each time")
        #expect(up())
        await edge.close()
        #expect(await eventually { !up() }, "a closed edge is out without a check")
        await redirector.close()
        await origin.stop()
    }

    @Test func aBadConfigurationIsRefusedWithItsLine() {
        let text = """
            zone: cdn.test
            origin: http://127.0.0.1:8080
            regions:
              east: {networks: [10.1.0.0/33]}
            edges:
              - {name: e1, region: east, address: 127.0.0.2:8000}
            """
        #expect {
            try RedirectorConfiguration.parse(text, file: "cdn.yaml")
        } throws: { error in
            "\(error)".hasPrefix("cdn.yaml:4: networks: '10.1.0.0/33' is not a network")
        }
        #expect(throws: ConfigurationError.self) {
            try RedirectorConfiguration.parse(
                "zone: cdn.test\norigin: http://127.0.0.1:8080\nregions: {east: {networks: [10.0.0.0/8]}}\nedges:\n  - {name: e1, region: north, address: 127.0.0.2:8000}\n"
            )
        }
    }
}
