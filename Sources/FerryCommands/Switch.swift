import ArgumentParser
import FerryEndpoints
import FerrySwitch
import Logging
import ServiceLifecycle

/// `ferry switch`: many backends seen as one server.
struct SwitchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switch",
        abstract: "Front many backends as one server: a transport-layer (TCP) switch.",
        discussion: """
            Prints 'listening on HOST:PORT' first, then relays each accepted connection to a \\
            backend chosen by --balance, zero-copy (splice). A connect that fails is retried on \\
            the next backend, which leaves rotation until a TCP health check finds it again. \\
            Serves until SIGINT or SIGTERM. Only --mode l4 is built so far: handoff and l7 are \\
            refused.
            """
    )

    @Option(help: "l4 (TCP relay); handoff and l7 are not built yet.")
    var mode = "l4"

    @Option(help: "Where to listen, HOST:PORT (port 0 for any free port).")
    var listen = "127.0.0.1:8000"

    @Option(
        name: .customLong("backend"),
        help: ArgumentHelp("A backend; repeat for each.", valueName: "HOST:PORT[@WEIGHT]")
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
        guard self.mode == "l4" else {
            throw ValidationError("--mode \(self.mode) is not built yet; only l4 is (see the README)")
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
            throw ValidationError("--backend takes HOST:PORT or HOST:PORT@WEIGHT, got '\(backend)'")
        }
        guard self.healthInterval > 0, self.threads > 0 else {
            throw ValidationError("--health-interval and --threads must be positive")
        }
    }

    func run() async throws {
        let logger = Logger(label: "ferry.switch")
        let relay = try TransportSwitch(
            listen: ServiceEndpoint(self.listen, allowingAnyPort: true)!,
            backends: self.backends.compactMap(BackendSpec.init),
            policy: BalancePolicy(rawValue: self.balance)!,
            maxConnectionsPerBackend: self.maxConnections,
            healthCheckInterval: .milliseconds(Int64(self.healthInterval * 1000)),
            threads: self.threads,
            logger: logger
        )
        printLine("listening on \(relay.address)")
        try await ServiceGroup(
            services: [SwitchService(relay: relay)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ).run()
    }

    /// Runs until a graceful shutdown, then stops the switch.
    struct SwitchService: Service {
        let relay: TransportSwitch

        func run() async throws {
            try? await gracefulShutdown()
            self.relay.stop()
        }
    }
}
