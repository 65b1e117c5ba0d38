import ArgumentParser
import FerryEndpoints
import FerryMigration
import FerryNode
import FerryWire
import Foundation
import Logging
import ServiceLifecycle

/// `ferry node`: one node of a cluster, as a process of its own.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run a node: it hosts processes, takes them from other nodes and sends them on.",
        discussion: """
            Prints 'listening on HOST:PORT' (its FerryWire port) first, then where it takes moving \
            processes. It registers as node:NAME at the endpoint daemon (or on etcd, with \
            --registry) with its load. SIGTERM or \
            SIGINT stops it: its processes stop, or move first to --evacuate-to.
            """
    )

    @Option(help: "The node's name in the cluster.")
    var name: String

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The node's FerryWire port; 0 picks a free one.", transform: parsePort)
    var port = 0

    @Option(help: "The endpoint daemon, HOST:PORT.", transform: parseAddress)
    var endpoints = ServiceEndpoint(host: "127.0.0.1", port: EndpointDaemon.defaultPort)

    @OptionGroup var etcd: RegistryOption

    @Option(help: "Where the node keeps code and its processes' layers across restarts.")
    var dataDir: String?

    @Option(
        help: ArgumentHelp(
            "The cluster's credentials (ca.pem, cert.pem, key.pem); default DATA_DIR/tls, FERRY_DATA_DIR's, or ~/.ferry's.",
            valueName: "DIR"
        )
    )
    var credentials: String?

    @Option(help: ArgumentHelp("Run modules signed by this public key (repeat for more).", valueName: "PUBKEYFILE"))
    var trust: [String] = []

    @Flag(help: "Run any valid module, signed or not.")
    var allowUnsigned = false

    @Flag(help: "Run native programs in containers ('ferry spawn --container'), which need root.")
    var allowContainers = false

    @Option(help: "Kernel threads that run guests.")
    var threads = 2

    @OptionGroup var engineOption: EngineOption

    @Option(help: ArgumentHelp("On SIGTERM, move every running process to this node first.", valueName: "NODE"))
    var evacuateTo: String?

    @Option(help: ArgumentHelp("A value of the node's own key space (ferry.local_get).", valueName: "KEY=VALUE"))
    var local: [String] = []

    @Option(
        help: ArgumentHelp(
            "Run the node in a cgroup with this CPU quota (e.g. 0.5), so that it stands for a machine of that size.",
            valueName: "N"
        )
    )
    var cpus: Double?

    @Option(
        help:
            "Load-driven moves this node starts: off, sender (it offers work when over its threshold), receiver (it asks for work when under it), or both."
    )
    var balance: Balancer.Mode = .off

    @Option(
        help: "Serve the control API, the dashboard and /metrics on this port (0 picks a free one).",
        transform: parsePort
    )
    var httpPort: Int?

    @Option(
        help: ArgumentHelp(
            "The control API's token, made there if missing (default: DATA-DIR/control-token, else ~/.ferry/control-token).",
            valueName: "PATH"
        )
    )
    var httpTokenFile: String?

    func validate() throws {
        guard (1...64).contains(self.threads) else {
            throw ValidationError("--threads takes 1 to 64, got \(self.threads)")
        }
        if let cpus = self.cpus {
            let cores = ProcessInfo.processInfo.activeProcessorCount
            guard cpus >= 0.01, cpus <= Double(cores) else {
                throw ValidationError("--cpus takes 0.01 to \(cores) (the CPUs of this machine), got \(cpus)")
            }
        }
        guard !self.trust.isEmpty || self.allowUnsigned else {
            throw ValidationError(
                "a node runs only signed code: give --trust PUBKEYFILE (see 'ferry keys generate'), or --allow-unsigned"
            )
        }
    }

    func run() async throws {
        let shutdown = await ShutdownSignals()
        NodeMetrics.bootstrap()
        let logger = Logger(label: "ferry.node.\(self.name)")
        let engine = try self.engineOption.choose()
        logger.info("guests run on the \(engine) engine")
        var values: [String: String] = [:]
        for pair in self.local {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("--local takes KEY=VALUE, got '\(pair)'") }
            values[parts[0]] = parts[1]
        }
        var quota: CPUQuota?
        if let cpus = self.cpus {
            do {
                quota = try CPUQuota.apply(cpus: cpus, node: self.name)
            } catch let error as CPUQuotaError {
                throw CommandFailure("node \(self.name) cannot start: \(error)")
            }
        }
        defer { quota?.release() }
        let trust = CodeStore.Trust(
            keys: try self.trust.map(TrustedKey.init(path:)),
            allowUnsigned: self.allowUnsigned,
            allowContainers: self.allowContainers
        )
        var console: ConsoleServer?
        if let httpPort = self.httpPort {
            let tokenFile =
                self.httpTokenFile ?? ((self.dataDir ?? Node.defaultDataDirectory) + "/" + ConsoleToken.fileName)
            do {
                console = try await ConsoleServer.start(
                    host: self.host,
                    port: httpPort,
                    reader: ClusterReader(registry: self.etcd.address(or: self.endpoints)),
                    token: try ConsoleToken.loadOrCreate(at: tokenFile),
                    logger: logger
                )
            } catch let error as ConsoleError {
                throw CommandFailure("node \(self.name) cannot start: \(error.message)")
            }
        }
        let node: NodeServer
        do {
            node = try await NodeServer.start(
                .init(
                    name: self.name,
                    host: self.host,
                    port: self.port,
                    registry: self.etcd.address(or: self.endpoints),
                    dataDirectory: self.dataDir,
                    trust: trust,
                    threads: self.threads,
                    evacuateTo: self.evacuateTo,
                    localValues: values,
                    cpuQuota: quota,
                    balance: self.balance,
                    http: console?.address
                ),
                logger: logger
            )
        } catch let error as ErrorMessage {
            throw CommandFailure("node \(self.name) cannot start: \(error.message)")
        }
        printLine("listening on \(node.endpoint)")
        printLine("migration on \(node.migration.endpoint)")
        printLine("node \(self.name) registered at \(self.etcd.address(or: self.endpoints))")
        if let console { printLine("dashboard http://\(console.address)/") }
        if let quota { printLine("cpu quota \(quota.cpus) CPUs for guests (cgroup \(quota.guestsPath))") }
        try await shutdown.run([node] + (console.map { [$0] } ?? []), logger: logger)
        printLine("node \(self.name) stopped")
    }
}

extension NodeCommand: ClusterCredentialsCommand {
    var credentialsDirectory: String? {
        self.credentials ?? self.dataDir.map { ClusterCredentials.directory(inDataDirectory: $0) }
    }
}
