import FerryConfiguration
import FerryEndpoints
import FerrySuperserver
import FerryTestSupport
import Foundation
import Logging
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SuperserverTests {
    static let logger: Logger = {
        var logger = Logger(label: "test.superserver")
        logger.logLevel = .critical
        return logger
    }()

    static func start(_ yaml: String) throws -> Superserver {
        try Superserver(configuration: try SuperserverConfiguration.parse(yaml), logger: Self.logger)
    }

    static func port(_ superserver: Superserver, _ name: String) throws -> Int {
        try #require(superserver.bound.first { $0.name == name }).address.port
    }

    @Test func theShippedExampleParses() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let configuration = try SuperserverConfiguration.load(path: root.path + "/Examples/superserver.yaml")
        #expect(configuration.services.map(\.name) == ["echo", "daytime", "cat"])
        let cat = try #require(configuration.services.last)
        #expect(cat.mode == .nowait && cat.program == "/bin/cat" && cat.maxInstances == 16)
        #expect(configuration.endpoints == .daemon(ServiceEndpoint(host: "127.0.0.1", port: 7411)))
    }

    @Test(
        arguments: [
            (
                "services:\n  - name: echo\n    listen: 127.0.0.1:0\n    mode: builtin\n    builtin: echo\n    colour: red\n",
                6, "colour"
            ),
            (
                "services:\n  - name: a\n    listen: 127.0.0.1:7\n    mode: builtin\n    builtin: echo\n  - name: b\n    listen: 127.0.0.1:7\n    mode: builtin\n    builtin: echo\n",
                6, "listen"
            ),
            ("services:\n  - name: c\n    listen: 127.0.0.1:0\n    mode: nowait\n", 2, "program"),
            (
                "services:\n  - name: c\n    listen: 127.0.0.1:0\n    mode: nowait\n    program: /etc/passwd\n", 5,
                "program"
            ),
            (
                "services:\n  - name: c\n    listen: 127.0.0.1:0\n    protocol: udp\n    mode: nowait\n    program: /bin/cat\n",
                5, "mode"
            ),
            ("services:\n  - name: c\n    listen: 127.0.0.1:0\n    mode: sometimes\n", 4, "mode"),
            ("services:\n  - name: c\n    listen: nowhere\n    mode: builtin\n    builtin: echo\n", 3, "listen"),
            (
                "services:\n  - name: c\n    listen: 127.0.0.1:0\n    mode: builtin\n    builtin: echo\n    max_instances: 0\n",
                6, "max_instances"
            ),
            (
                "services:\n  - name: c\n    listen: 127.0.0.1:0\n    mode: builtin\n    builtin: echo\n    user: no-such-user-here\n",
                6, "user"
            ),
            ("services:\n  - name: [unclosed\n", 3, nil),
            ("daemon: 1\nservices: []\n", 1, "daemon"),
        ] as [(String, Int, String?)]
    )
    func aBadConfigurationNamesItsLineAndField(yaml: String, line: Int, field: String?) {
        do {
            _ = try SuperserverConfiguration.parse(yaml, file: "test.yaml")
            Issue.record("accepted:\n\(yaml)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.field == field, "\(error)")
            #expect("\(error)".hasPrefix("test.yaml:\(line)"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func builtinsAnswerOverTCPAndUDP() throws {
        let superserver = try Self.start(
            """
            endpoints: off
            services:
              - {name: echo, listen: "127.0.0.1:0", mode: builtin, builtin: echo}
              - {name: echo-udp, listen: "127.0.0.1:0", protocol: udp, mode: builtin, builtin: echo}
              - {name: daytime, listen: "127.0.0.1:0", mode: builtin, builtin: daytime}
              - {name: chargen, listen: "127.0.0.1:0", mode: builtin, builtin: chargen}
            """
        )
        defer { superserver.stop() }
        let echo = try TestClient(port: try Self.port(superserver, "echo"), timeout: 5)
        try echo.send("ping\n")
        #expect(echo.text(atLeast: 5) == "ping\n")
        echo.close()

        let udp = try TestClient(port: try Self.port(superserver, "echo-udp"), timeout: 5, udp: true)
        try udp.send("datagram")
        #expect(udp.text() == "datagram")
        udp.close()

        let daytime = try TestClient(port: try Self.port(superserver, "daytime"), timeout: 5)
        let time = try #require(daytime.text(atLeast: 1000))
        #expect(time.hasSuffix("\r\n") && time.contains(String(Calendar.current.component(.year, from: Date()))))
        daytime.close()

        let chargen = try TestClient(port: try Self.port(superserver, "chargen"), timeout: 5)
        let lines = try #require(chargen.text(atLeast: 148)).components(separatedBy: "\r\n")
        #expect(lines[0].hasPrefix(" !\"#$%&'()*+,-./0123456789") && lines[0].count == 72)
        #expect(lines[1].hasPrefix("!\"#$%&'()*+,-./0123456789:"), "each line rotates by one")
        chargen.close()
    }

    @Test func nowaitStartsAProcessPerConnectionOnTheSocket() throws {
        let superserver = try Self.start(
            """
            endpoints: off
            services:
              - {name: cat, listen: "127.0.0.1:0", mode: nowait, program: /bin/cat}
              - {name: env, listen: "127.0.0.1:0", mode: nowait, program: /usr/bin/env, env: {GREETING: hello}}
            """
        )
        defer { superserver.stop() }
        let port = try Self.port(superserver, "cat")
        let first = try TestClient(port: port, timeout: 5)
        let second = try TestClient(port: port, timeout: 5)
        try first.send("one\n")
        try second.send("two\n")
        #expect(second.text(atLeast: 4) == "two\n")
        #expect(first.text(atLeast: 4) == "one\n")
        first.close()
        second.close()

        let env = try TestClient(port: try Self.port(superserver, "env"), timeout: 5)
        let environment = try #require(env.text(atLeast: 10_000))
        #expect(environment.contains("FERRY_SERVICE=env\n"))
        #expect(environment.contains("REMOTE_ADDR=127.0.0.1\n"))
        #expect(environment.contains("GREETING=hello\n"))
        env.close()
    }

    @Test func aServiceRunsAsItsConfiguredUser() throws {
        guard getuid() == 0 else {
            print("skipped: running a service as another user needs root (uid \(getuid()))")
            return
        }
        let superserver = try Self.start(
            """
            endpoints: off
            services:
              - {name: id, listen: "127.0.0.1:0", mode: nowait, program: /usr/bin/id, user: nobody}
            """
        )
        defer { superserver.stop() }
        let id = try TestClient(port: try Self.port(superserver, "id"), timeout: 5)
        let output = try #require(id.text(atLeast: 1000))
        let nobody = try #require(getpwnam("nobody")).pointee.pw_uid
        #expect(output.hasPrefix("uid=\(nobody)("), "\(output)")
        #expect(!output.contains("groups=0("), "no supplementary groups of root")
        id.close()
    }

    @Test func waitHandsTheListeningSocketToOneProcessAndTakesItBack() throws {
        // The program accepts one connection itself, answers with its pid, and exits.
        let superserver = try Self.start(
            """
            endpoints: off
            services:
              - name: once
                listen: "127.0.0.1:0"
                mode: wait
                program: /usr/bin/python3
                args: ["-c", "import os, socket; s = socket.socket(fileno=0); c, _ = s.accept(); c.sendall(str(os.getpid()).encode()); c.close()"]
            """
        )
        defer { superserver.stop() }
        let port = try Self.port(superserver, "once")
        let first = try TestClient(port: port, timeout: 5)
        let firstPID = try #require(first.text(atLeast: 100))
        first.close()
        // After that process exits the superserver watches the socket again and starts another.
        let second = try TestClient(port: port, timeout: 5)
        let secondPID = try #require(second.text(atLeast: 100))
        second.close()
        #expect(!firstPID.isEmpty && !secondPID.isEmpty && firstPID != secondPID)
    }

    @Test func waitOverUDPHandsTheDatagramSocketToTheProcess() throws {
        let superserver = try Self.start(
            """
            endpoints: off
            services:
              - name: shout
                listen: "127.0.0.1:0"
                protocol: udp
                mode: wait
                program: /usr/bin/python3
                args: ["-c", "import socket; s = socket.socket(fileno=0); d, a = s.recvfrom(100); s.sendto(d.upper(), a)"]
            """
        )
        defer { superserver.stop() }
        let port = try Self.port(superserver, "shout")
        for word in ["first", "second"] {
            let client = try TestClient(port: port, timeout: 5, udp: true)
            try client.send(word)
            #expect(client.text() == word.uppercased(), "a new process for each datagram burst")
            client.close()
        }
    }

    @Test func instanceAndRateLimitsRefuseTheExcessAndServeTheRest() throws {
        let superserver = try Self.start(
            """
            endpoints: off
            services:
              - {name: one-at-a-time, listen: "127.0.0.1:0", mode: nowait, program: /bin/cat, max_instances: 1}
              - {name: slow, listen: "127.0.0.1:0", mode: builtin, builtin: echo, per_source_rate: 1}
            """
        )
        defer { superserver.stop() }
        let port = try Self.port(superserver, "one-at-a-time")
        let holder = try TestClient(port: port, timeout: 5)
        try holder.send("mine\n")
        #expect(holder.text(atLeast: 5) == "mine\n")
        let refused = try TestClient(port: port, timeout: 5)
        #expect(refused.isClosedByPeer, "a second instance is refused while the first runs")
        refused.close()
        holder.close()
        // Once the first process has exited, a client is served again.
        var served = false
        let deadline = ContinuousClock.now + .seconds(10)
        while !served && ContinuousClock.now < deadline {
            guard let retry = try? TestClient(port: port, timeout: 5) else { continue }
            try retry.send("again\n")
            served = retry.text(atLeast: 6) == "again\n"
            retry.close()
        }
        #expect(served)

        let slow = try Self.port(superserver, "slow")
        let allowed = try TestClient(port: slow, timeout: 5)
        try allowed.send("x")
        #expect(allowed.text() == "x")
        let throttled = try TestClient(port: slow, timeout: 5)
        #expect(throttled.isClosedByPeer, "a second connection within the second is refused")
        throttled.close()
        allowed.close()
    }

    @Test func aReloadKeepsEstablishedConnectionsAndABadOneChangesNothing() throws {
        let superserver = try Self.start(
            """
            endpoints: off
            services:
              - {name: cat, listen: "127.0.0.1:0", mode: nowait, program: /bin/cat}
              - {name: echo, listen: "127.0.0.1:0", mode: builtin, builtin: echo}
            """
        )
        defer { superserver.stop() }
        let catPort = try Self.port(superserver, "cat")
        let echoPort = try Self.port(superserver, "echo")
        let established = try TestClient(port: catPort, timeout: 5)
        try established.send("before\n")
        #expect(established.text(atLeast: 7) == "before\n")
        let echoing = try TestClient(port: echoPort, timeout: 5)

        #expect(throws: ConfigurationError.self) {
            try superserver.reload(try SuperserverConfiguration.parse("services:\n  - name: broken\n"))
        }
        #expect(superserver.bound.map(\.name) == ["cat", "echo"], "a refused reload changes nothing")

        // cat is gone, echo stays on its socket, daytime is new.
        try superserver.reload(
            try SuperserverConfiguration.parse(
                """
                endpoints: off
                services:
                  - {name: echo, listen: "127.0.0.1:\(echoPort)", mode: builtin, builtin: echo}
                  - {name: daytime, listen: "127.0.0.1:0", mode: builtin, builtin: daytime}
                """
            )
        )
        #expect(superserver.bound.map(\.name) == ["echo", "daytime"])
        try established.send("after\n")
        #expect(established.text(atLeast: 6) == "after\n", "the cat process keeps its connection")
        try echoing.send("still\n")
        #expect(echoing.text(atLeast: 6) == "still\n", "the builtin keeps its connection")
        established.close()
        echoing.close()
        let newcomer = try TestClient(port: echoPort, timeout: 5)
        try newcomer.send("new\n")
        #expect(newcomer.text(atLeast: 4) == "new\n", "the kept socket takes new clients")
        newcomer.close()
        // The loop closes a removed service's socket on its next wake: wait until it has.
        let closed = waitUntil(within: .seconds(10)) { (try? TestClient(port: catPort, timeout: 5)) == nil }
        #expect(closed != nil, "the removed service's port is closed")
        let daytime = try TestClient(port: try Self.port(superserver, "daytime"), timeout: 5)
        #expect(daytime.text(atLeast: 1000)?.hasSuffix("\r\n") == true)
        daytime.close()
    }

    @Test func servicesAreRegisteredAtTheEndpointDaemon() async throws {
        let daemon = try await EndpointDaemon.bind(port: 0, logger: Self.logger)
        let superserver = try Self.start(
            """
            endpoints: 127.0.0.1:\(daemon.port)
            services:
              - {name: echo, listen: "127.0.0.1:0", mode: builtin, builtin: echo}
            """
        )
        let client = try await EndpointClient.connect(port: daemon.port)
        var registered: [EndpointEntry] = []
        for try await change in client.watch("echo") where !change.entries.isEmpty {
            registered = change.entries
            break
        }
        #expect(registered.first?.endpoints.first?.port == (try Self.port(superserver, "echo")))
        #expect(registered.first?.metadata["mode"] == "builtin")
        superserver.stop()
        await client.close()
        await daemon.close()
    }
}
