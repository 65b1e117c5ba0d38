import ArgumentParser
import FerryEndpoints
import FerrySuperserver
import Logging
import ServiceLifecycle

/// `ferry superserver`: inetd, with leases at the endpoint daemon.
struct SuperserverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "superserver",
        abstract: "Listen on every endpoint of a configuration and start each service when a client arrives.",
        discussion: """
            Prints 'listening on HOST:PORT NAME' for every endpoint, then serves until SIGINT or \
            SIGTERM. SIGHUP reloads the file; established connections stay, and a bad file is \
            refused with its line and field while the running configuration stays. \
            See Examples/superserver.yaml for the format.
            """
    )

    @Option(help: "The configuration file (YAML).")
    var config: String

    func run() async throws {
        let shutdown = await ShutdownSignals()
        let logger = Logger(label: "ferry.superserver")
        let configuration = try SuperserverConfiguration.load(path: self.config)
        let superserver = try Superserver(configuration: configuration, logger: logger)
        await superserver.reloadOnHangup(from: self.config)
        for bound in superserver.bound {
            printLine("listening on \(bound.address) \(bound.name)")
        }
        try await shutdown.run([superserver], logger: logger)
    }
}
