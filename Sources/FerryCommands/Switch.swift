import ArgumentParser
import FerryEndpoints
import FerrySwitch
import Logging
import ServiceLifecycle

/// `ferry switch`: many backends seen as one server.
struct SwitchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switch",
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
        help:
            "roundrobin, leastconn, weighted, source (a consistent hash of the client's address) or lard (l7: by content)."
    )
    var balance = "roundrobin"

    @Option(help: "At most this many open connections per backend.")
    var maxConnections: Int?

    @Option(help: "Seconds between TCP health checks of every backend.")
    var healthInterval = 2.0

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

    @Option(help: "l7: seconds a client may take to send a request head, or stay idle between requests.")
    var clientTimeout = 10.0

    @Option(help: "l7: seconds a backend may take to start its answer, or stay silent within it.")
    var backendTimeout = 30.0

    func validate() throws {
        guard ["l4", "handoff", "l7"].contains(self.mode) else {
            throw ValidationError("--mode takes l4, handoff or l7, got '\(self.mode)'")
        }
        for route in self.routes where HTTPRoute(route) == nil {
            throw ValidationError(
                "--route takes 'host=NAME path=/PREFIX header=NAME:VALUE group=GROUP' (at least one condition and a group), got '\(route)'"
            )
        }
        guard self.mode == "l7" || (self.routes.isEmpty && self.stickyCookie == nil) else {
            throw ValidationError("--route and --sticky-cookie need --mode l7")
        }
        guard self.clientTimeout > 0, self.backendTimeout > 0 else {
            throw ValidationError("--client-timeout and --backend-timeout must be positive")
        }
        guard BalancePolicy(rawValue: self.balance) != nil else {
            throw ValidationError(
                "--balance \(self.balance) is unknown; use one of \(BalancePolicy.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        guard ServiceEndpoint(self.listen, allowingAnyPort: true) != nil else {
            throw ValidationError("--listen takes HOST:PORT, got '\(self.listen)'")
        }
        guard !self.backends.isEmpty else { throw ValidationError("give at least one --backend HOST:PORT") }
        for backend in self.backends where BackendSpec(backend) == nil {
            throw ValidationError("--backend takes HOST:PORT or unix:PATH, then @WEIGHT if wanted; got '\(backend)'")
        }
        guard self.healthInterval > 0, self.threads > 0 else {
            throw ValidationError("--health-interval and --threads must be positive")
        }
    }

    func run() async throws {
        let logger = Logger(label: "ferry.switch")
        let listen = ServiceEndpoint(self.listen, allowingAnyPort: true)!
        let backends = self.backends.compactMap(BackendSpec.init)
        let policy = BalancePolicy(rawValue: self.balance)!
        let interval = Duration.milliseconds(Int64(self.healthInterval * 1000))
        let running: SwitchService
        switch self.mode {
        case "handoff":
            let handoff = try HandoffSwitch(
                listen: listen,
                backends: backends,
                policy: policy,
                healthCheckInterval: interval,
                logger: logger
            )
            running = SwitchService(address: handoff.address, stop: handoff.stop)
        case "l7":
            let http = try HTTPSwitch(
                listen: listen,
                backends: backends,
                policy: policy,
                maxConnectionsPerBackend: self.maxConnections,
                healthCheckInterval: interval,
                options: .init(
                    routes: self.routes.compactMap(HTTPRoute.init),
                    stickyCookie: self.stickyCookie,
                    clientTimeout: .milliseconds(Int64(self.clientTimeout * 1000)),
                    backendTimeout: .milliseconds(Int64(self.backendTimeout * 1000))
                ),
                threads: self.threads,
                logger: logger
            )
            running = SwitchService(address: http.address, stop: http.stop)
        default:
            let relay = try TransportSwitch(
                listen: listen,
                backends: backends,
                policy: policy,
                maxConnectionsPerBackend: self.maxConnections,
                healthCheckInterval: interval,
                threads: self.threads,
                logger: logger
            )
            running = SwitchService(address: relay.address, stop: relay.stop)
        }
        printLine("listening on \(running.address)")
        try await ServiceGroup(services: [running], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
    }

    /// Runs until a graceful shutdown, then stops the switch.
    struct SwitchService: Service {
        let address: ServiceEndpoint
        let stop: @Sendable () -> Void

        func run() async throws {
            try? await gracefulShutdown()
            self.stop()
        }
    }
}
