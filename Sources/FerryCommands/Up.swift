import ArgumentParser
import FerryEndpoints
import FerryMigration
import FerryNode
import FerryServer
import FerryWire
import Foundation
import Logging
import ServiceLifecycle

/// `ferry up`: the main job — a local node on embedded defaults.
struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start a local Ferry node on loopback and print what runs where.",
        discussion: "Ctrl-C stops it cleanly."
    )

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The file server's port; 0 picks a free one.", transform: parsePort)
    var port = 8080

    @Option(help: "The control endpoint's port; 0 picks a free one.", transform: parsePort)
    var controlPort = 8081

    @Option(help: "A directory to serve instead of the built-in demo site.")
    var root: String?

    @Option(help: "The file server's execution model.")
    var model: ExecutionModel = .eventDriven

    @Option(help: "The endpoint daemon's port; 0 picks a free one.", transform: parsePort)
    var endpointsPort = EndpointDaemon.defaultPort

    @Option(help: "The key-value service's port; 0 picks a free one.", transform: parsePort)
    var kvPort = 7412

    @Option(help: "The object server's port; 0 picks a free one.", transform: parsePort)
    var objectsPort = 7413

    @Option(help: "The CDN redirector's HTTP port; 0 picks a free one.", transform: parsePort)
    var redirectorPort = 8082

    @Option(help: "The CDN redirector's DNS port (UDP and TCP); 0 picks a free one.", transform: parsePort)
    var dnsPort = 8053

    @Option(help: "The dashboard's, control API's and /metrics' port; 0 picks a free one.", transform: parsePort)
    var dashboardPort = 8083

    @Option(help: "Where the cluster keeps permanent state (default: FERRY_DATA_DIR, else ~/.ferry).")
    var dataDir: String?

    @Option(help: ArgumentHelp("Also take connections handed over by a switch on this Unix socket.", valueName: "PATH"))
    var handoffSocket: String?

    @Option(help: "How many nodes to start, each a 'ferry node' process that hosts processes.")
    var nodes = 3

    @Option(help: "Load-driven moves between the nodes: off, sender, receiver or both.")
    var balance: Balancer.Mode = .both

    @OptionGroup(
        title:
            "Slow and idle clients (the cap, 1024 per address by default, is at the switch: the tiers behind it see its address)"
    )
    var clients: ClientLimitOptions

    func validate() throws {
        guard (0...16).contains(self.nodes) else { throw ValidationError("--nodes takes 0 to 16, got \(self.nodes)") }
    }

    func run() async throws {
        let shutdown = await ShutdownSignals()
        NodeMetrics.bootstrap()
        let logger = Logger(label: "ferry.node")
        let dataDirectory = self.dataDir ?? Node.defaultDataDirectory
        var configuration = Node.Configuration(
            host: self.host,
            httpPort: self.port,
            controlPort: self.controlPort,
            root: self.root,
            model: self.model,
            endpointsPort: self.endpointsPort,
            kvPort: self.kvPort,
            dataDirectory: dataDirectory,
            handoffSocket: self.handoffSocket,
            objectsPort: self.objectsPort
        )
        configuration.clientTimeouts = try self.clients.timeouts()
        configuration.maxConnectionsPerSource = self.clients.maxConnectionsPerSource ?? 1024
        let node = try await Node.start(configuration, logger: logger)
        var services = node.services
        var summary = node.summary
        let tokenFile = dataDirectory + "/" + ConsoleToken.fileName
        let kv = node.kvServer
        let console: ConsoleServer
        do {
            console = try await ConsoleServer.start(
                host: self.host,
                port: self.dashboardPort,
                reader: ClusterReader(
                    registry: .daemon(ServiceEndpoint(host: node.endpointDaemon.host, port: node.endpointDaemon.port)),
                    switchControl: node.switchControl
                ),
                token: try ConsoleToken.loadOrCreate(at: tokenFile),
                kv: { try KVView(reading: kv) },
                logger: logger
            )
        } catch let error as ConsoleError {
            throw CommandFailure("ferry up cannot start: \(error.message)")
        }
        services.append(console)
        summary.insert(
            contentsOf: [
                "dashboard http://\(console.address)/",
                "token     \(tokenFile)  (the API's actions: -H \"Authorization: Bearer $(cat \(tokenFile))\")",
            ],
            at: 2
        )
        summary.insert(contentsOf: Self.consoleLines(console, tokenFile: tokenFile), at: summary.count - 1)
        let cdn = try await CDNDemo.start(
            root: node.fileServer.configuration.root,
            host: self.host,
            redirectorPort: self.redirectorPort,
            dnsPort: self.dnsPort,
            daemon: ServiceEndpoint(host: node.endpointDaemon.host, port: node.endpointDaemon.port),
            logger: logger
        )
        services.append(contentsOf: cdn.services)
        summary.insert(contentsOf: cdn.summary, at: (summary.firstIndex { $0.hasPrefix("objects") } ?? 0) + 1)
        summary.insert(contentsOf: cdn.tryLines, at: summary.count - 1)
        if self.nodes > 0 {
            let processes = try NodeProcesses.start(
                count: self.nodes,
                host: self.host,
                daemon: ServiceEndpoint(host: node.endpointDaemon.host, port: node.endpointDaemon.port),
                dataDirectory: dataDirectory,
                balance: self.balance,
                tokenFile: tokenFile,
                logger: logger
            )
            services.append(processes)
            let daemon = "\(node.endpointDaemon.host):\(node.endpointDaemon.port)"
            let objects = (summary.firstIndex { $0.hasPrefix("objects") } ?? 0) + 1
            summary.insert(contentsOf: Self.nodeLines(processes), at: objects)
            summary.insert(contentsOf: Self.tryLines(processes, daemon: daemon), at: summary.count - 1)
        }
        summary.insert(Self.securityLine, at: summary.firstIndex(of: "") ?? summary.count)
        for line in self.dataDir.map({ Self.naming($0, in: summary) }) ?? summary { printLine(line) }
        try await shutdown.run(services, logger: logger)
        printLine("node stopped")
    }

    /// The summary with `--data-dir DIR` after each client command it suggests: without it they
    /// would look for the cluster's credentials in FERRY_DATA_DIR or ~/.ferry, not where these are.
    static func naming(_ dataDir: String, in lines: [String]) -> [String] {
        let command =
            #/swift run ferry (?:objects ls|control|endpoints|kv|call|spawn|wait|logs|migrate|ps|send|learn)(?= )/#
        return lines.map { line in line.replacing(command) { "\($0.output) --data-dir \(dataDir)" } }
    }

    /// How FerryWire connections are secured, with or without node processes.
    static var securityLine: String {
        guard let directory = WireSecurity.credentials?.directory else {
            return "tls       none  (FerryWire connections are plain: no credentials were found)"
        }
        return
            "tls       \(directory)  (every FerryWire connection: TLS 1.3, both ends certified by the cluster's authority)"
    }

    /// How to try the control API.
    static func consoleLines(_ console: ConsoleServer, tokenFile: String) -> [String] {
        [
            "the control API (the dashboard's; reads are open on loopback):",
            "  curl -s http://\(console.address)/api/v1/cluster",
            "  curl -s http://\(console.address)/api/v1/switch",
            "  curl -s -X POST -H \"Authorization: Bearer $(cat \(tokenFile))\" http://\(console.address)/api/v1/switch/backends/ADDRESS/drain",
            "  curl -s http://\(console.address)/metrics",
        ]
    }

    /// What `ferry up` says of its node processes.
    static func nodeLines(_ processes: NodeProcesses) -> [String] {
        processes.nodes.map {
            "node      \($0.name) \($0.endpoint)  (a 'ferry node' process; data \($0.dataDirectory))"
        } + [
            "signing   \(processes.keyFile)  (every node trusts \(processes.publicKeyFile))"
        ]
    }

    /// How to try processes that move.
    static func tryLines(_ processes: NodeProcesses, daemon: String) -> [String] {
        let first = processes.nodes.first?.name ?? "node-1"
        let second = processes.nodes.dropFirst().first?.name ?? first
        let third = processes.nodes.dropFirst(2).first?.name ?? second
        return [
            "processes that move (sign a module with the cluster key first):",
            "  swift run ferry sign Guests/agent.wasm --key \(processes.keyFile) --out /tmp/agent.wasm",
            "  swift run ferry spawn --endpoints \(daemon) --node \(first) /tmp/agent.wasm --name tour \(second) \(third)",
            "  swift run ferry wait --endpoints \(daemon) tour && swift run ferry logs --endpoints \(daemon) tour",
            "  swift run ferry sign Guests/sha256.plain.wasm --key \(processes.keyFile) --out /tmp/sha.wasm",
            "  swift run ferry spawn --endpoints \(daemon) --node \(first) /tmp/sha.wasm --name sha --invoke sha256_generated --result-bytes 32 8388608 0",
            "  swift run ferry migrate --endpoints \(daemon) sha --to \(second) --json",
            "  swift run ferry ps --endpoints \(daemon)",
            "live migration of a server process, called while it moves:",
            "  swift run ferry sign Guests/echo.wasm --key \(processes.keyFile) --out /tmp/echo.wasm",
            "  swift run ferry spawn --endpoints \(daemon) --node \(first) /tmp/echo.wasm --name echo 32",
            "  swift run ferry send --endpoints \(daemon) echo hello",
            "  swift run ferry migrate --endpoints \(daemon) echo --to \(second) --mode post-copy --json   # or pre-copy, hybrid",
            "  swift run ferry send --endpoints \(daemon) echo 'hello again'",
            "federated learning: the model goes to each node's data, only weights come back:",
            "  swift run ferry learn --endpoints \(daemon) --nodes \(first),\(second),\(third) --split dirichlet:0.5 --rounds 5 --key \(processes.keyFile)",
        ]
    }
}

extension Up: ClusterCredentialsCommand {
    var credentialsDirectory: String? {
        ClusterCredentials.directory(inDataDirectory: self.dataDir ?? Node.defaultDataDirectory)
    }

    /// The first `ferry up` on a data directory makes the cluster's authority there.
    func makeCredentialsIfMissing(in directory: String) throws {
        // Only whether they are there: loading them is the bootstrap's, once.
        guard !FileManager.default.fileExists(atPath: directory + "/" + ClusterCredentials.certificateFile) else {
            return
        }
        try ClusterAuthority.create(in: directory)
    }
}
