import ArgumentParser
import FerryEndpoints
import FerrySwitch
import Logging
import ServiceLifecycle

/// `ferry switch`: many backends seen as one server.
struct SwitchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switch",
        abstract: "Front many backends as one server: a transport-layer (TCP) switch or TCP handoff.",
        discussion: """
            Prints 'listening on HOST:PORT' first and serves until SIGINT or SIGTERM. \\
            --mode l4 relays each accepted connection to a backend chosen by --balance, zero-copy \\
            (splice). --mode handoff passes the accepted socket itself to a backend process on this \\
            host (backends given as unix:PATH, a Ferry server's --handoff-socket), which then talks \\
            to the client directly. A backend that cannot be reached is skipped for the next one \\
            and leaves rotation until a health check finds it again.
            """
    )

    @Option(help: "l4 (TCP relay) or handoff (pass the accepted socket to a backend on this host).")
    var mode = "l4"

    @Option(help: "Where to listen, HOST:PORT (port 0 for any free port).")
    var listen = "127.0.0.1:8000"

    @Option(
        name: .customLong("backend"),
        help: ArgumentHelp("A backend; repeat for each.", valueName: "HOST:PORT|unix:PATH[@WEIGHT]")
    )
    var backends: [String] = []

    @Option(help: "roundrobin, leastconn, weighted or source (a consistent hash of the client's address).")
    var balance = "roundrobin"

    @Option(help: "At most this many open connections per backend.")
    var maxConnections: Int?

    @Option(help: "Seconds between TCP health checks of every backend.")
    var healthInterval = 2.0

    @Option(help: "Relay threads (each an epoll loop).")
    var threads = 2

    func validate() throws {
        guard ["l4", "handoff"].contains(self.mode) else {
            throw ValidationError("--mode takes l4 or handoff, got '\(self.mode)'")
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
