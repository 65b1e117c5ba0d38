import FerryEndpoints
import FerryTestSupport
import Foundation
import Testing

extension FerryProcessTests {
    /// An origin, two `ferry edge` processes and a `ferry redirector`, each its own process: an edge
    /// killed with SIGKILL leaves the answers within a check; a bad configuration sent with SIGHUP
    /// is refused and the policy stays.
    @Test func aCDNOfProcessesSurvivesAKilledEdgeAndABadReload() throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }
        try FileManager.default.createDirectory(atPath: temporary.path + "/www", withIntermediateDirectories: true)
        temporary.write("www/page.txt", "from the origin\n")
        let origin = try Running([
            "serve", "files", "--root", temporary.path + "/www", "--port", "0", "--cache-control", "max-age=600",
        ])
        let originPort = try #require(origin.nextLine().flatMap(listeningAddress)).port
        var edges: [Running] = []
        var addresses: [ServiceEndpoint] = []
        for (name, host) in [("e1", "127.0.0.2"), ("e2", "127.0.0.3")] {
            let edge = try Running([
                "edge", "--origin", "http://127.0.0.1:\(originPort)", "--host", host, "--port", "0", "--name", name,
                "--control", "\(temporary.path)/\(name).sock",
            ])
            addresses.append(try #require(edge.nextLine().flatMap(listeningAddress)))
            edges.append(edge)
        }
        let file = temporary.write(
            "cdn.yaml",
            """
            zone: cdn.test
            origin: http://127.0.0.1:\(originPort)
            check_interval: 0.2
            regions:
              east: {networks: [127.0.0.0/24, 10.1.0.0/16]}
              west: {networks: [10.2.0.0/16]}
            distances: {east: {west: 70}}
            edges:
              - {name: e1, region: east, address: \(addresses[0]), capacity: 1000}
              - {name: e2, region: west, address: \(addresses[1]), capacity: 1000}

            """
        )
        let redirector = try Running(["redirector", "--config", file], errors: .merged)
        var http: ServiceEndpoint?
        var dns: ServiceEndpoint?
        while dns == nil, let line = redirector.nextLine() {
            if line.hasPrefix("listening on ") { http = listeningAddress(line) }
            if line.hasPrefix("dns on ") { dns = ServiceEndpoint(String(line.dropFirst("dns on ".count))) }
        }
        let front = try #require(http)
        #expect(dns != nil)
        func location(_ path: String) -> String? {
            (try? TestClient(port: front.port))?.fetch(path)?.header("Location")
        }
        // The first round of checks runs before the redirector answers; on a loaded machine (a
        // parallel test run) a check can time out, and the next round finds the edge up.
        let toEdge = waitUntil(within: .seconds(10)) { location("/page.txt") == "http://\(addresses[0])/page.txt" }
        #expect(toEdge != nil, "the redirector sends east clients to e1")
        let edge = try TestClient(port: addresses[0].port, host: addresses[0].host)
        #expect(edge.fetch("/page.txt")?.header("X-Cache") == "MISS")
        #expect(edge.fetch("/page.txt")?.header("X-Cache") == "HIT")

        // The redirector holds a connection to each edge that is up (`held` in its status): the
        // kill below is to be found by that connection, so wait until it is held.
        let held = waitUntil(within: .seconds(10)) {
            let body = (try? TestClient(port: front.port))?.fetch("/.ferry/status")?.body ?? []
            let status = String(decoding: body, as: UTF8.self)
            return status.contains(#""held":true"#) && !status.contains(#""held":false"#)
        }
        #expect(held != nil, "the redirector holds a connection to each edge")
        kill(edges[0].process.processIdentifier, SIGKILL)
        let movedOver = waitUntil(within: .seconds(10)) { location("/page.txt") == "http://\(addresses[1])/page.txt" }
        #expect(movedOver != nil, "the redirector stops sending clients to a killed edge")
        if let movedOver { #expect(movedOver < .seconds(10), "within checks (0.2 s apart), not a ttl") }
        var lines: [String] = []

        try Data("zone: cdn.test\nedges: []\n".utf8).write(to: URL(fileURLWithPath: file))
        kill(redirector.process.processIdentifier, SIGHUP)
        var refusal: String?
        while refusal == nil, let line = redirector.nextLine() {
            lines.append(line)
            if line.contains("reload refused") { refusal = line }
        }
        #expect(refusal?.contains("origin: is missing") == true)
        #expect(
            lines.contains { $0.contains("edge e1") && $0.contains("its connection closed") },
            "the held connection, not the next check, found the killed edge"
        )
        #expect(location("/page.txt") == "http://\(addresses[1])/page.txt", "the running policy stays")
        #expect(redirector.stop(SIGTERM) == 0)
        _ = edges[1].stop(SIGTERM)
        _ = origin.stop(SIGTERM)
    }

    @Test func cdnFlagsAreCheckedBeforeAnythingStarts() throws {
        for (arguments, message) in [
            (["edge", "--origin", "http://127.0.0.1:8080", "--port", "99999"], "a port is a number from 0 to 65535"),
            (["edge", "--origin", "ftp://x"], "--origin takes http://HOST:PORT"),
            (["redirector", "explain", "--config", "/nonexistent.yaml", "--client", "10.1.2.300"], "--client takes"),
        ] {
            let command = try Running(arguments, errors: .merged)
            var output = ""
            while let line = command.nextLine() { output += line + "\n" }
            #expect(command.stop(SIGTERM) != 0)
            #expect(output.contains(message), "\(arguments): \(output)")
        }
    }
}
