import ArgumentParser
import FerryEndpoints
import FerryNode
import FerryServer
import Logging
import ServiceLifecycle

/// `ferry up`: the main job — a local node on embedded defaults.
struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a local Ferry node on loopback and print what runs where.",
        discussion: "Ctrl-C stops it cleanly."
    )

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The file server's port; 0 picks a free one.")
    var port = 8080

    @Option(help: "The control endpoint's port; 0 picks a free one.")
    var controlPort = 8081

    @Option(help: "A directory to serve instead of the built-in demo site.")
    var root: String?

    @Option(help: "The file server's execution model.")
    var model: ExecutionModel = .eventDriven

    @Option(help: "The endpoint daemon's port; 0 picks a free one.")
    var endpointsPort = EndpointDaemon.defaultPort

    @Option(help: "The key-value service's port; 0 picks a free one.")
    var kvPort = 7412

    @Option(help: "The object server's port; 0 picks a free one.")
    var objectsPort = 7413

    @Option(help: "Where the node keeps permanent state (default ~/.ferry).")
    var dataDir: String?

    @Option(help: ArgumentHelp("Also take connections handed over by a switch on this Unix socket.", valueName: "PATH"))
    var handoffSocket: String?

    func run() async throws {
        let logger = Logger(label: "ferry.node")
        let node = try await Node.start(
            .init(
                host: self.host,
                httpPort: self.port,
                controlPort: self.controlPort,
                root: self.root,
                model: self.model,
                endpointsPort: self.endpointsPort,
                kvPort: self.kvPort,
                dataDirectory: self.dataDir ?? Node.defaultDataDirectory,
                handoffSocket: self.handoffSocket,
                objectsPort: self.objectsPort
            ),
            logger: logger
        )
        for line in node.summary { printLine(line) }
        try await ServiceGroup(services: node.services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            .run()
        printLine("node stopped")
    }
}
