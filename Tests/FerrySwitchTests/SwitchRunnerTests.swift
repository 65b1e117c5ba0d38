import FerryConfiguration
import FerryEndpoints
import FerryHTTP
import FerrySwitch
import FerryTestSupport
import Foundation
import Logging
import Testing

@Suite struct SwitchRunnerTests {
    var logger: Logger {
        var logger = Logger(label: "test.switch")
        logger.logLevel = .critical
        return logger
    }

    func configuration(_ mode: SwitchConfiguration.Mode, _ ports: [Int]) -> SwitchConfiguration {
        var configuration = SwitchConfiguration()
        configuration.mode = mode
        configuration.listen = ServiceEndpoint(host: "127.0.0.1", port: 0)
        configuration.backends = ports.map { BackendSpec(endpoint: ServiceEndpoint(host: "127.0.0.1", port: $0)) }
        configuration.healthInterval = .seconds(60)
        configuration.threads = 1
        return configuration
    }

    /// Waits for `condition`, checking every 10 ms, at most `seconds`, without holding a thread
    /// the switch's own tasks may need.
    @Test func aReloadDropsNoEstablishedConnection() async throws {
        let a = try await EchoBackend(name: "a")
        let b = try await EchoBackend(name: "b")
        let runner = try await SwitchRunner.start(self.configuration(.l4, [a.port]), logger: self.logger)
        defer { runner.stop() }
        let established = try TestClient(port: runner.address.port)
        #expect(established.line() == "a")

        try runner.reload(self.configuration(.l4, [b.port]))
        let fresh = try TestClient(port: runner.address.port)
        #expect(fresh.line() == "b", "new connections meet the new switch")
        established.send(Array("still here\n".utf8))
        #expect(established.line() == "still here", "the old switch still relays its connection")
        established.close()
        fresh.close()
        try await a.stop()
        try await b.stop()
    }

    @Test func anHTTPReloadSendsNewRequestsToTheNewBackends() async throws {
        try await FileBackends.with(names: ["old", "new"]) { backends in
            let runner = try await SwitchRunner.start(
                self.configuration(.l7, [backends.ports[0]]),
                logger: self.logger
            )
            defer { runner.stop() }
            let before = try TestClient(port: runner.address.port)
            #expect(before.fetch("/name.txt")?.text == "old")
            try runner.reload(self.configuration(.l7, [backends.ports[1]]))
            let after = try TestClient(port: runner.address.port)
            #expect(after.fetch("/name.txt")?.text == "new")
            // The old switch closes its idle keep-alive connection rather than keep it forever.
            #expect(before.receive(1).isEmpty)
            before.close()
            after.close()
        }
    }

    @Test func aBadReloadKeepsTheRunningSwitch() async throws {
        let a = try await EchoBackend(name: "a")
        let runner = try await SwitchRunner.start(self.configuration(.l4, [a.port]), logger: self.logger)
        defer { runner.stop() }
        var moved = self.configuration(.l4, [a.port])
        moved.listen = ServiceEndpoint(host: "127.0.0.1", port: 1)
        #expect(throws: SwitchError.self) { try runner.reload(moved) }
        #expect(throws: SwitchError.self) { try runner.reload(self.configuration(.l4, [])) }
        let client = try TestClient(port: runner.address.port)
        #expect(client.line() == "a")
        client.close()
        try await a.stop()
    }

    @Test func backendsAreDiscoveredAndFollowedAtTheEndpointDaemon() async throws {
        let daemon = try await EndpointDaemon.bind(port: 0, logger: self.logger)
        let directory = try await EndpointClient.connect(port: daemon.port)
        let first = try await EchoBackend(name: "first")
        let second = try await EchoBackend(name: "second")
        let lease = try await directory.register(
            "echo",
            endpoints: [ServiceEndpoint(host: "127.0.0.1", port: first.port)],
            ttl: .seconds(30)
        )
        var configuration = self.configuration(.l4, [])
        configuration.discover = [SwitchConfiguration.Discovery("echo")!]
        configuration.endpoints = .daemon(ServiceEndpoint(host: "127.0.0.1", port: daemon.port))
        let runner = try await SwitchRunner.start(configuration, logger: self.logger)
        let following = Task { try await runner.run() }
        let client = try TestClient(port: runner.address.port)
        #expect(client.line() == "first")
        client.close()

        // The service moves: the switch follows the daemon's watch.
        try await directory.deregister(lease)
        _ = try await directory.register(
            "echo",
            endpoints: [ServiceEndpoint(host: "127.0.0.1", port: second.port)],
            ttl: .seconds(30)
        )
        let secondAddress = "127.0.0.1:\(second.port)"
        let followed = await eventually(within: .seconds(60)) {
            runner.balancer.backends.map(\.spec.address.description) == [secondAddress]
        }
        #expect(followed)
        let moved = try TestClient(port: runner.address.port)
        #expect(moved.line() == "second")
        moved.close()

        following.cancel()
        runner.stop()
        await directory.close()
        await daemon.close()
        try await first.stop()
        try await second.stop()
    }

    @Test func theExampleFileParsesAndBadFilesSayWhere() throws {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Examples/switch.yaml").path
        let configuration = try SwitchConfiguration.load(path: example)
        #expect(configuration.mode == .l7 && configuration.balance == .locality)
        #expect(configuration.discover == [SwitchConfiguration.Discovery(service: "app", group: "app")])
        #expect(configuration.routes == [HTTPRoute(pathPrefix: "/app/", group: "app")])
        #expect(configuration.slowStart == .seconds(10))
        #expect(
            configuration.clientTimeouts == ClientTimeouts(header: .seconds(10), body: .seconds(30), idle: .seconds(60))
        )
        #expect(configuration.maxConnectionsPerSource == 1024)
        let older = try SwitchConfiguration.parse("backends: [127.0.0.1:1]\nclient_timeout: 4\n", file: "s.yaml")
        #expect(older.clientTimeouts.header == .seconds(4) && older.clientTimeouts.idle == .seconds(4))

        let bad: [(String, String)] = [
            ("mode: l9\nbackends: [127.0.0.1:1]\n", "mode"),
            ("backends: [nohost]\n", "backends"),
            ("mode: l7\nbackends: [127.0.0.1:1]\nroutes: [path=/x group=ghost]\n", "names a group no backend is in"),
            ("backends: [127.0.0.1:1]\nspeed: 11\n", "unknown setting"),
            ("mode: l4\n", "needs backends"),
            ("mode: handoff\nbackends: [127.0.0.1:1]\n", "unix:PATH"),
            // Found by fuzz-config: a number of seconds past Int64's milliseconds trapped.
            ("backends: [127.0.0.1:1]\nhealth_interval: 1e300\n", "at most 31536000 (a year)"),
            ("backends: [127.0.0.1:1]\nhealth_interval: .inf\n", "above 0"),
            ("backends: [127.0.0.1:1]\nhealth_interval: 0\n", "above 0"),
        ]
        for (text, expected) in bad {
            #expect(throws: ConfigurationError.self) { try SwitchConfiguration.parse(text, file: "s.yaml") }
            do {
                _ = try SwitchConfiguration.parse(text, file: "s.yaml")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
                #expect("\(error)".hasPrefix("s.yaml:"), "\(error)")
            }
        }
    }
}
