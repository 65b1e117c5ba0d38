import ArgumentParser
import FerryEndpoints
import FerryServer
import FerrySwitch
import Testing

@testable import FerryCommands

@Suite struct CommandParsingTests {
    @Test func parsesServeFiles() throws {
        let command = try FerryCommand.parseAsRoot([
            "serve", "files", "--root", "/srv", "--model", "dispatcher", "--workers", "3", "--queue", "9",
            "--control-port", "0",
        ])
        let files = try #require(command as? Serve.Files)
        #expect(files.root == "/srv")
        #expect(files.model == .dispatcher)
        #expect(files.workers == 3)
        #expect(files.queue == 9)
        #expect(files.controlPort == 0)
        #expect(files.port == 0, "serve picks a free port unless told")
        #expect(files.host == "127.0.0.1")
    }

    @Test(arguments: ExecutionModel.allCases)
    func acceptsEveryModelByName(model: ExecutionModel) throws {
        let command = try FerryCommand.parseAsRoot(["serve", "files", "--root", "/srv", "--model", model.rawValue])
        #expect((command as? Serve.Files)?.model == model)
    }

    @Test(arguments: [
        (["serve", "files", "--root", "/srv", "--model", "fibers"], "fibers"),
        (["serve", "files", "--root", "/srv", "--workers", "0"], "--workers must be at least 1"),
        (["serve", "files"], "--root"),
        (["serve", "kv", "--db", "/tmp/kv.sqlite", "--loops", "0"], "--loops takes 1 to 256"),
        (["serve", "kv", "--db", "/tmp/kv.sqlite", "--idle-poll-us=-1"], "--idle-poll-us takes 0 to 10000"),
        (["serve", "kv", "--db", "/tmp/kv.sqlite", "--idle-poll-us", "99999"], "--idle-poll-us takes 0 to 10000"),
        (["control", "--addr", "nonsense", "stats"], "--addr must be HOST:PORT"),
        (["control", "--addr", "h:99999", "stats"], "--addr must be HOST:PORT"),
        (["endpointd", "--port", "99999"], "a port is a number from 0 to 65535"),
        (["serve", "files", "--root", "/srv", "--control-port", "99999"], "a port is a number from 0 to 65535"),
        (["up", "--port", "99999"], "a port is a number from 0 to 65535"),
        (["up", "--control-port", "65536"], "a port is a number from 0 to 65535"),
        (["up", "--endpoints-port", "70000"], "a port is a number from 0 to 65535"),
        (["up", "--kv-port", "99999"], "a port is a number from 0 to 65535"),
        (["up", "--objects-port", "99999"], "a port is a number from 0 to 65535"),
        (["endpoints", "--addr", "h", "ls"], "--addr must be HOST:PORT"),
        (["endpoints", "register", "web", "nowhere"], "nowhere"),
        (["endpoints", "register", "web", "h:1", "--meta", "novalue"], "--meta takes KEY=VALUE"),
        (["endpoints", "register", "web", "h:1", "--ttl", "0"], "above 0"),
        (["endpoints", "register", "web", "h:1", "--ttl", "1e300"], "at most 31536000"),
        (["switch", "--backend", "127.0.0.1:1", "--health-interval", "inf"], "above 0"),
        (["switch", "--backend", "127.0.0.1:1", "--hold-back", "2000000000"], "--hold-back takes 0 to"),
        (["call", "counter", "increment", "--timeout", "nan"], "above 0"),
        (["migrate", "p", "--to", "n2", "--mode", "teleport"], "teleport"),
        (["migrate", "p", "--to", "n2", "--mode", "pre-copy", "--max-rounds", "0"], "--max-rounds 0 is not between"),
        (["migrate", "p", "--to", "n2", "--max-downtime", "0"], "--max-downtime 0.0 is not between"),
    ])
    func refusesBadArgumentsWithAMessageNamingThem(arguments: [String], message: String) {
        do {
            _ = try FerryCommand.parseAsRoot(arguments)
            Issue.record("\(arguments) parsed")
        } catch {
            #expect(FerryCommand.message(for: error).contains(message), "\(FerryCommand.message(for: error))")
        }
    }

    @Test func parsesControlWithItsAddressBeforeTheSubcommand() throws {
        let command = try FerryCommand.parseAsRoot(["control", "--addr", "127.0.0.1:9000", "cancel", "4", "2"])
        let cancel = try #require(command as? ControlCommand.Cancel)
        #expect(cancel.connection == 4)
        #expect(cancel.request == 2)
        #expect(cancel.control.addr == ServiceEndpoint(host: "127.0.0.1", port: 9000))
    }

    @Test func parsesEndpointsCommands() throws {
        let register = try #require(
            try FerryCommand.parseAsRoot([
                "endpoints", "--addr", "127.0.0.1:7000", "register", "web", "127.0.0.1:80", "[::1]:80", "--ttl", "5",
                "--meta", "zone=a",
            ]) as? EndpointsCommand.Register
        )
        #expect(register.endpoints.addr.port == 7000)
        #expect(register.endpoint == [.init(host: "127.0.0.1", port: 80), .init(host: "::1", port: 80)])
        #expect(try register.parsedMetadata() == ["zone": "a"])
        let lookup = try #require(
            try FerryCommand.parseAsRoot(["endpoints", "lookup", "web"]) as? EndpointsCommand.Lookup
        )
        #expect(
            lookup.endpoints.addr == ServiceEndpoint(host: "127.0.0.1", port: 7411),
            "the well-known port by default"
        )
        #expect(try FerryCommand.parseAsRoot(["endpoints", "ls", "--json"]) is EndpointsCommand.List)
        #expect(try FerryCommand.parseAsRoot(["endpoints", "watch", "web"]) is EndpointsCommand.Watch)
        let daemon = try #require(try FerryCommand.parseAsRoot(["endpointd", "--port", "0"]) as? EndpointDaemonCommand)
        #expect(daemon.port == 0)
    }

    /// `ferry up --data-dir DIR` suggests client commands that find its credentials there.
    @Test func upSuggestsClientCommandsWithItsDataDirectory() {
        let lines = Up.naming(
            "/srv/c",
            in: [
                "  swift run ferry kv --endpoints h:1 get greeting",
                "  swift run ferry wait --endpoints h:1 tour && swift run ferry logs --endpoints h:1 tour",
                "  swift run ferry objects ls --addr h:1",
                "  swift run ferry switch stats --control /srv/c/switch.sock",
                "kv        h:2  (FerryWire, durable)",
            ]
        )
        #expect(
            lines == [
                "  swift run ferry kv --data-dir /srv/c --endpoints h:1 get greeting",
                "  swift run ferry wait --data-dir /srv/c --endpoints h:1 tour && swift run ferry logs --data-dir /srv/c --endpoints h:1 tour",
                "  swift run ferry objects ls --data-dir /srv/c --addr h:1",
                "  swift run ferry switch stats --control /srv/c/switch.sock",
                "kv        h:2  (FerryWire, durable)",
            ]
        )
    }

    @Test func upDefaultsToTheDocumentedPorts() throws {
        let up = try #require(try FerryCommand.parseAsRoot(["up"]) as? Up)
        #expect(up.port == 8080)
        #expect(up.controlPort == 8081)
        #expect(up.model == .eventDriven)
    }

    /// Every client command takes `--data-dir` and finds the cluster's credentials in its `tls/`;
    /// where a command has subcommands that share it, it may come before the subcommand too.
    @Test(arguments: [
        ["call", "counter", "increment"], ["objects", "ls"], ["objects", "relocate", "counter", "--to", "h:1"],
        ["kv", "get", "k"], ["kv", "put", "k", "v"], ["kv", "del", "k"], ["kv", "cas", "k", "a", "b"], ["kv", "ls"],
        ["endpoints", "register", "web", "h:1"], ["endpoints", "lookup", "web"], ["endpoints", "ls"],
        ["endpoints", "watch", "web"], ["spawn", "--node", "n1", "m.wasm"], ["ps"], ["wait", "p"], ["kill", "p"],
        ["logs", "p"], ["migrate", "p", "--to", "n2"], ["eval", "--node", "n1", "m.wasm", "--invoke", "f"],
        ["send", "p", "hi"], ["data", "load", "--node", "n1", "f.bin"], ["learn", "--nodes", "n1"],
        ["control", "stats"], ["control", "cancel", "1", "2"],
    ])
    func everyClientCommandTakesADataDirectory(arguments: [String]) throws {
        let shared = ["kv", "endpoints", "control"].contains(arguments[0])
        let before = [arguments[0], "--data-dir", "/srv/c"] + arguments.dropFirst()
        for placed in [arguments + ["--data-dir", "/srv/c"]] + (shared ? [before] : []) {
            let command = try FerryCommand.parseAsRoot(placed)
            let credentials = try #require(command as? any ClusterCredentialsCommand, "\(placed)")
            #expect(credentials.credentialsDirectory == "/srv/c/tls", "\(placed)")
        }
    }
}

@Suite struct SwitchControlTests {
    @Test func theControlSocketDrainsReadiesAndReports() throws {
        let balancer = FerrySwitch.Balancer(
            backends: [BackendSpec("127.0.0.1:9001")!, BackendSpec("api=127.0.0.1:9002@3")!],
            policy: .roundRobin
        )
        #expect(
            SwitchControl.answer("drain 127.0.0.1:9002", balancer: balancer) == "ok draining 127.0.0.1:9002 (0 open)"
        )
        #expect(balancer.backends[1].draining)
        let stats = SwitchControl.answer("stats", balancer: balancer)
        #expect(stats.contains(#""address":"127.0.0.1:9002","draining":true"#), "\(stats)")
        #expect(stats.contains(#""group":"api""#) && stats.contains(#""weight":3"#))
        #expect(SwitchControl.answer("ready 127.0.0.1:9002", balancer: balancer).hasPrefix("ok "))
        #expect(!balancer.backends[1].draining)
        #expect(SwitchControl.answer("drain 1.2.3.4:5", balancer: balancer).hasPrefix("error: no backend 1.2.3.4:5"))
        #expect(SwitchControl.answer("reboot", balancer: balancer).hasPrefix("error: unknown request"))
    }

    @Test func switchIsTheDefaultAndItsOptionsParse() throws {
        let command = try FerryCommand.parseAsRoot([
            "switch", "--mode", "l7", "--backend", "127.0.0.1:1", "--route", "path=/api group=api",
            "--backend", "api=127.0.0.1:2", "--health-check", "http:/healthz", "--slow-start", "5",
        ])
        let serve = try #require(command as? SwitchServe)
        #expect(serve.mode == "l7" && serve.healthCheck == "http:/healthz" && serve.slowStart == .seconds(5))
        #expect(throws: (any Error).self) {
            try FerryCommand.parseAsRoot(["switch", "--backend", "127.0.0.1:1", "--health-check", "udp"])
        }
        #expect(throws: (any Error).self) {
            try FerryCommand.parseAsRoot(["switch", "--backend", "127.0.0.1:1", "--route", "group=x"])
        }
        #expect(try FerryCommand.parseAsRoot(["switch", "drain", "--control", "/tmp/s", "127.0.0.1:1"]) is SwitchDrain)
    }
}
