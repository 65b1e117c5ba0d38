import ArgumentParser
import FerryEndpoints
import FerryServer
import FerrySwitch
import Foundation
import Logging
import ServiceLifecycle

/// `ferry switch`: many backends seen as one server, and the commands that steer a running one.
struct SwitchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switch",
        abstract: "Front many backends as one server (ferry switch serve, the default), and steer it.",
        subcommands: [SwitchServe.self, SwitchStats.self, SwitchDrain.self, SwitchReady.self],
        defaultSubcommand: SwitchServe.self
    )
}

/// `ferry switch [serve]`: runs a switch.
struct SwitchServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Front many backends as one server: a TCP relay, TCP handoff, or an HTTP switch.",
        discussion: """
            Prints 'listening on HOST:PORT' first and serves until SIGINT or SIGTERM. \\
            --mode l4 relays each accepted connection to a backend chosen by --balance, zero-copy \\
            (splice). --mode handoff passes the accepted socket itself to a backend process on this \\
            host (backends given as unix:PATH, a Ferry server's --handoff-socket), which then talks \\
            to the client directly. --mode l7 reads each HTTP/1.1 request and routes it by --route \\
            rules (host, path prefix, header) to a group of backends (GROUP=HOST:PORT), balanced \\
            within the group (--balance lard keeps the same content on the same backend), with \\
            X-Forwarded-For, pooled keep-alive connections to backends, an optional sticky cookie, \\
            and a retry on another backend for requests that may be repeated. A backend that \\
            cannot be reached is skipped for the next one and leaves rotation until a health \\
            check finds it again.
            """
    )

    @Option(help: "l4 (TCP relay), handoff (pass the accepted socket to a backend on this host) or l7 (HTTP).")
    var mode = "l4"

    @Option(help: "Where to listen, HOST:PORT (port 0 for any free port).")
    var listen = "127.0.0.1:8000"

    @Option(
        name: .customLong("backend"),
        help: ArgumentHelp(
            "A backend; repeat for each. GROUP= puts it in a group for l7 routes.",
            valueName: "[GROUP=]HOST:PORT|unix:PATH[@WEIGHT]"
        )
    )
    var backends: [String] = []

    @Option(
        name: .customLong("discover"),
        help: ArgumentHelp(
            "A service registered at the endpoint daemon: its endpoints are backends, followed as they come and go; repeat for each.",
            valueName: "[GROUP=]NAME[@WEIGHT]"
        )
    )
    var discoveries: [String] = []

    @Option(help: ArgumentHelp("The endpoint daemon, for --discover.", valueName: "HOST:PORT"))
    var endpoints = ServiceEndpoint(host: "127.0.0.1", port: EndpointDaemon.defaultPort)

    @OptionGroup var etcd: RegistryOption

    @Option(
        help:
            "roundrobin, leastconn, weighted, source (a consistent hash of the client's address) or lard (l7: by content)."
    )
    var balance = "roundrobin"

    @Option(help: "At most this many open connections per backend.")
    var maxConnections: Int?

    @Option(help: "Seconds between health checks of every backend.", transform: parseSeconds)
    var healthInterval: Duration = .seconds(2)

    @Option(
        help: ArgumentHelp(
            "How to check a backend: tcp (it accepts a connection) or http:/PATH (it answers below 400).",
            valueName: "tcp|http:/PATH"
        )
    )
    var healthCheck = "tcp"

    @Option(
        help: "Seconds a backend that comes back takes to reach its full share of work (none when left out).",
        transform: parseSeconds
    )
    var slowStart: Duration?

    @Option(help: "Relay threads (each an epoll loop).")
    var threads = 2

    @Option(
        name: .customLong("route"),
        help: ArgumentHelp(
            "l7: send matching requests to a group; repeat, first match wins.",
            valueName: "'[host=NAME] [path=/PREFIX] [header=NAME:VALUE] group=GROUP'"
        )
    )
    var routes: [String] = []

    @Option(help: ArgumentHelp("l7: keep each client on one backend with this cookie.", valueName: "NAME"))
    var stickyCookie: String?

    @Option(
        help: "l7: sets --header-timeout and --idle-timeout both, in seconds (the older flag).",
        transform: parseSeconds
    )
    var clientTimeout: Duration?

    @Option(
        help: "l7: seconds a backend may take to start its answer, or stay silent within it.",
        transform: parseSeconds
    )
    var backendTimeout: Duration = .seconds(30)

    @Option(
        help: ArgumentHelp(
            "l7: hold back answers with bodies up to this many bytes until whole, so that one a dying backend breaks off is retried elsewhere (idempotent requests); larger ones stream. 0 streams all.",
            valueName: "BYTES"
        )
    )
    var holdBack = HTTPSwitch.Options.defaultHoldBack

    @OptionGroup(title: "l7: slow and idle clients (the cap defaults to 1024 connections per address)")
    var clients: ClientLimitOptions

    @Option(
        help: ArgumentHelp(
            "A Unix socket that takes control requests (ferry switch stats|drain|ready --control PATH).",
            valueName: "PATH"
        )
    )
    var control: String?

    @Option(
        help: ArgumentHelp(
            "Take every setting from this YAML file instead of flags; SIGHUP reloads it (see Examples/switch.yaml).",
            valueName: "FILE"
        )
    )
    var config: String?

    func validate() throws {
        if self.config != nil {
            guard self.mode == "l4", self.listen == "127.0.0.1:8000", self.backends.isEmpty, self.discoveries.isEmpty,
                self.routes.isEmpty,
                self.balance == "roundrobin", self.healthCheck == "tcp", self.stickyCookie == nil,
                self.etcd.registry == nil
            else {
                throw ValidationError("with --config, give the settings in the file, not as flags")
            }
            return
        }
        _ = try self.configurationFromFlags()
    }

    /// The configuration the flags describe.
    func configurationFromFlags() throws -> SwitchConfiguration {
        var configuration = SwitchConfiguration()
        guard let mode = SwitchConfiguration.Mode(rawValue: self.mode) else {
            throw ValidationError("--mode takes l4, handoff or l7, got '\(self.mode)'")
        }
        configuration.mode = mode
        guard let listen = ServiceEndpoint(self.listen, allowingAnyPort: true) else {
            throw ValidationError("--listen takes HOST:PORT, got '\(self.listen)'")
        }
        configuration.listen = listen
        configuration.backends = try self.backends.map { text in
            guard let backend = BackendSpec(text) else {
                throw ValidationError(
                    "--backend takes [GROUP=]HOST:PORT or unix:PATH, then @WEIGHT if wanted; got '\(text)'"
                )
            }
            return backend
        }
        configuration.discover = try self.discoveries.map { text in
            guard let discovery = SwitchConfiguration.Discovery(text) else {
                throw ValidationError("--discover takes [GROUP=]NAME, then @WEIGHT if wanted; got '\(text)'")
            }
            return discovery
        }
        configuration.endpoints = self.etcd.address(or: self.endpoints)
        guard let balance = BalancePolicy(rawValue: self.balance) else {
            throw ValidationError(
                "--balance \(self.balance) is unknown; use one of \(BalancePolicy.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        configuration.balance = balance
        configuration.routes = try self.routes.map { text in
            guard let route = HTTPRoute(text) else {
                throw ValidationError(
                    "--route takes 'host=NAME path=/PREFIX header=NAME:VALUE group=GROUP' (at least one condition and a group), got '\(text)'"
                )
            }
            return route
        }
        guard let check = HealthCheck(self.healthCheck) else {
            throw ValidationError("--health-check takes tcp or http:/PATH, got '\(self.healthCheck)'")
        }
        configuration.healthCheck = check
        configuration.healthInterval = self.healthInterval
        configuration.slowStart = self.slowStart
        configuration.clientTimeouts = try self.clients.timeouts()
        if let clientTimeout = self.clientTimeout {
            configuration.clientTimeouts.header = clientTimeout
            configuration.clientTimeouts.idle = configuration.clientTimeouts.header
        }
        configuration.backendTimeout = self.backendTimeout
        let range = HTTPSwitch.Options.holdBackRange
        guard range.contains(self.holdBack) else {
            throw ValidationError(
                "--hold-back takes \(range.lowerBound) to \(range.upperBound) bytes, got \(self.holdBack)"
            )
        }
        configuration.holdBack = self.holdBack
        configuration.maxConnections = self.maxConnections
        configuration.maxConnectionsPerSource = self.clients.maxConnectionsPerSource ?? 1024
        configuration.stickyCookie = self.stickyCookie
        configuration.threads = self.threads
        configuration.control = self.control
        if let problem = configuration.problem() { throw ValidationError(problem) }
        return configuration
    }

    func run() async throws {
        let shutdown = await ShutdownSignals()
        let logger = Logger(label: "ferry.switch")
        var configuration: SwitchConfiguration
        if let file = self.config {
            configuration = try SwitchConfiguration.load(path: file)
            configuration.control = self.control ?? configuration.control
        } else {
            configuration = try self.configurationFromFlags()
        }
        let runner = try await SwitchRunner.start(configuration, configurationFile: self.config, logger: logger)
        printLine("listening on \(runner.address)")
        var control: ControlSocket?
        if let path = configuration.control {
            control = try await ControlSocket.listen(at: path) { line, answer in
                answer.succeed(SwitchControl.answer(line, balancer: runner.balancer))
            }
            printLine("control on \(path)")
        }
        defer { control?.close() }
        try await shutdown.run([runner], logger: logger)
    }
}

/// `ferry switch stats`: a running switch's backends.
struct SwitchStats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show a running switch's backends: up or down, draining, open and total, failures."
    )

    @Option(help: "The switch's control socket (its --control).")
    var control: String

    @Flag(help: "Print the JSON the switch answers.")
    var json = false

    func run() async throws {
        let answer = try await controlRequest("stats", at: self.control, runningCommand: "ferry switch")
        if self.json {
            printLine(answer)
            return
        }
        let stats = try JSONDecoder().decode(SwitchControl.Stats.self, from: Data(answer.utf8))
        let rows = stats.backends.map { backend in
            [
                backend.address, backend.group.isEmpty ? "-" : backend.group, String(backend.weight),
                backend.draining ? "draining" : backend.up ? "up" : "down", String(backend.active),
                String(backend.total), String(backend.failures),
            ]
        }
        printTable(["BACKEND", "GROUP", "WEIGHT", "STATE", "OPEN", "TOTAL", "FAILURES"], rows)
    }
}

/// `ferry switch drain`: take a backend out gently, for maintenance.
struct SwitchDrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Stop giving a backend new work; what it has open finishes. 'ferry switch ready' undoes it."
    )

    @Option(help: "The switch's control socket (its --control).")
    var control: String

    @Argument(help: ArgumentHelp("The backend, as --backend named it.", valueName: "HOST:PORT|unix:PATH"))
    var backend: String

    func run() async throws {
        printLine(
            String(
                try await controlRequest("drain \(self.backend)", at: self.control, runningCommand: "ferry switch")
                    .dropFirst(3)
            )
        )
    }
}

/// `ferry switch ready`: a drained backend takes work again.
struct SwitchReady: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ready",
        abstract: "Give a drained backend work again."
    )

    @Option(help: "The switch's control socket (its --control).")
    var control: String

    @Argument(help: ArgumentHelp("The backend, as --backend named it.", valueName: "HOST:PORT|unix:PATH"))
    var backend: String

    func run() async throws {
        printLine(
            String(
                try await controlRequest("ready \(self.backend)", at: self.control, runningCommand: "ferry switch")
                    .dropFirst(3)
            )
        )
    }
}
