import FerryEndpoints
import FerryExamples
import FerryGuest
import FerryHTTP
import FerryKV
import FerryObjects
import FerryServer
import FerrySwitch
import FerryWire
import Foundation
import Logging
import ServiceLifecycle

/// A Ferry cluster on this machine, in the seed's three tiers, composed from one configuration:
///
/// - the front: an application-layer switch on the well-known port, which sends `/app/` to
///   the application tier and everything else to the file server;
/// - the application tier: `appNodes` app servers (``AppServer``), which keep no state of their
///   own, so any of them can answer any request;
/// - the data tier: the key-value service, durable in SQLite.
///
/// Beside them run the endpoint daemon, where every service is registered under a lease, and the
/// file server's control endpoint.
public struct Node: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        /// The front door: the switch's port; 0 picks a free one.
        public var httpPort: Int
        /// The control endpoint's port; 0 picks a free one.
        public var controlPort: Int
        /// The directory to serve; a demo site is written to a temporary directory when nil.
        public var root: String?
        public var model: ExecutionModel
        /// The endpoint daemon's port; 0 picks a free one.
        public var endpointsPort: Int
        /// The key-value service's port; 0 picks a free one.
        public var kvPort: Int
        /// Where permanent state lives (the key-value store).
        public var dataDirectory: String
        /// The lease the node's services hold at the endpoint daemon.
        public var registrationTTL: Duration
        /// A Unix socket on which the file server also takes connections handed over by a switch.
        public var handoffSocket: String?
        /// How many application nodes the switch fronts.
        public var appNodes: Int
        /// The object server's port; 0 picks a free one.
        public var objectsPort: Int
        /// How long HTTP clients may keep the switch, the file server and the app nodes waiting.
        public var clientTimeouts = ClientTimeouts()
        /// Connections one client address may hold open at the switch (the front door; the tiers
        /// behind it see every connection come from it); 0 for no cap.
        public var maxConnectionsPerSource = 1024

        public init(
            host: String = "127.0.0.1",
            httpPort: Int = 8080,
            controlPort: Int = 8081,
            root: String? = nil,
            model: ExecutionModel = .eventDriven,
            endpointsPort: Int = EndpointDaemon.defaultPort,
            kvPort: Int = 7412,
            dataDirectory: String = Node.defaultDataDirectory,
            registrationTTL: Duration = .seconds(15),
            handoffSocket: String? = nil,
            appNodes: Int = 3,
            objectsPort: Int = 7413
        ) {
            self.objectsPort = objectsPort
            self.host = host
            self.httpPort = httpPort
            self.controlPort = controlPort
            self.root = root
            self.model = model
            self.endpointsPort = endpointsPort
            self.kvPort = kvPort
            self.dataDirectory = dataDirectory
            self.registrationTTL = registrationTTL
            self.handoffSocket = handoffSocket
            self.appNodes = appNodes
        }
    }

    /// The node's long-running parts, to run under one ServiceGroup.
    public let services: [any Service]
    /// What runs where, one line each, for a person to read.
    public let summary: [String]
    public let fileServer: FileServer
    public let endpointDaemon: EndpointDaemon
    public let kvServer: KVServer
    public let apps: [AppServer]
    public let frontSwitch: HTTPSwitch
    /// The object server: `counter` (Swift) and `wasm-counter` (a guest), persistent.
    public let objects: ObjectServer
    /// The switch's control socket (`ferry switch stats|drain|ready --control PATH`).
    public let switchControl: String

    /// `FERRY_DATA_DIR`, else `~/.ferry`: the node's permanent state survives restarts, and the
    /// commands of the same environment find its credentials there.
    public static var defaultDataDirectory: String { WireSecurity.dataDirectory(explicit: nil) }

    /// Binds every part of the node.
    public static func start(_ configuration: Configuration, logger: Logger) async throws -> Node {
        let root = try configuration.root ?? DemoSite.write()
        let daemon = try await EndpointDaemon.bind(
            host: configuration.host,
            port: configuration.endpointsPort,
            logger: logger
        )
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        let kvPath = configuration.dataDirectory + "/kv.sqlite"
        let kv = try await KVServer.bind(
            path: kvPath,
            host: configuration.host,
            port: configuration.kvPort,
            logger: logger
        )
        let fileServer = try await FileServer.bind(
            .init(
                root: root,
                host: configuration.host,
                port: 0,
                model: configuration.model,
                controlPort: configuration.controlPort,
                sessionTTL: .seconds(600),
                handoffSocket: configuration.handoffSocket,
                timeouts: configuration.clientTimeouts
            ),
            logger: logger
        )
        var apps: [AppServer] = []
        for index in 1...max(1, configuration.appNodes) {
            apps.append(
                try await AppServer.bind(
                    name: "app-\(index)",
                    host: configuration.host,
                    port: 0,
                    kvHost: kv.host,
                    kvPort: kv.port,
                    timeouts: configuration.clientTimeouts,
                    logger: logger
                )
            )
        }
        let objectsPath = configuration.dataDirectory + "/objects.sqlite"
        let objects = try await ObjectServer.bind(
            adapters: [CounterAdapter.make(store: try ObjectStore(path: objectsPath), logger: logger)],
            host: configuration.host,
            port: configuration.objectsPort,
            registry: .daemon(ServiceEndpoint(host: daemon.host, port: daemon.port)),
            leaseTTL: configuration.registrationTTL,
            logger: logger
        )
        let files = ServiceEndpoint(host: fileServer.host, port: fileServer.port)
        let appEndpoints = apps.map { ServiceEndpoint(host: $0.host, port: $0.port) }
        let front = try HTTPSwitch(
            listen: try SwitchListener(ServiceEndpoint(host: configuration.host, port: configuration.httpPort)),
            backends: [BackendSpec(endpoint: files)] + appEndpoints.map { BackendSpec(endpoint: $0, group: "app") },
            policy: .roundRobin,
            healthCheckInterval: .seconds(2),
            options: .init(
                routes: [HTTPRoute(pathPrefix: "/app/", group: "app")],
                client: configuration.clientTimeouts,
                maxConnectionsPerSource: configuration.maxConnectionsPerSource
            ),
            logger: logger
        )
        let switchControl = configuration.dataDirectory + "/switch.sock"
        let switchControlSocket = try await ControlSocket.listen(at: switchControl) { line, answer in
            answer.succeed(SwitchControl.answer(line, balancer: front.balancer))
        }
        let http = "\(front.address)"
        let filesAddress = "\(files)"
        let control = fileServer.controlAddress.map { "\($0.host):\($0.port)" } ?? "-"
        let endpoints = "\(daemon.host):\(daemon.port)"
        let kvAddress = "\(kv.host):\(kv.port)"
        var registered: [(String, [ServiceEndpoint], [String: String])] = [
            ("web", [front.address], ["protocol": "http", "tier": "front", "control": switchControl]),
            ("app", appEndpoints, ["protocol": "http", "tier": "application"]),
            ("files", [files], ["protocol": "http"]),
            ("kv", [ServiceEndpoint(host: kv.host, port: kv.port)], ["protocol": "ferrywire", "tier": "data"]),
        ]
        if let address = fileServer.controlAddress {
            registered.append(
                ("files-control", [ServiceEndpoint(host: address.host, port: address.port)], ["protocol": "ferrywire"])
            )
        }
        let registrations = registered.map { name, endpoints, metadata in
            LeasedRegistration(
                name: name,
                endpoints: endpoints,
                metadata: metadata,
                ttl: configuration.registrationTTL,
                daemonHost: daemon.host,
                daemonPort: daemon.port,
                logger: logger
            )
        }
        let summary = [
            "listening on \(http)",
            "endpoints on \(endpoints)",
            "switch    http://\(http)/  (l7: /app/ to the app tier, the rest to files; control \(switchControl))",
            "app       " + apps.map { "\($0.name) \($0.host):\($0.port)" }.joined(separator: ", ") + "  (state in kv)",
            "files     http://\(filesAddress)/  (\(configuration.model.rawValue), root \(root))",
            "control   \(control)  (FerryWire: cancel, stats)",
            "kv        \(kvAddress)  (FerryWire, durable, \(kvPath))",
            "objects   \(objects.node)  (counter: Swift, wasm-counter: a wasm guest; persistent, \(objectsPath))",
            "",
            "try:",
            "  curl -i http://\(http)/",
            "  curl -s -X POST http://\(http)/app/visits     # front -> an app node -> kv, and back",
            "  swift run ferry switch stats --control \(switchControl)",
            "  curl -s -D- -o /dev/null -H 'Range: bytes=0-99' http://\(http)/big.bin",
            "  curl -s --limit-rate 100k -H 'TE: trailers' -D- -o /dev/null http://\(http)/big.bin &",
            "  swift run ferry control --addr \(control) cancel CONNECTION REQUEST   # ids from the Ferry-*-Id headers",
            "  swift run ferry control --addr \(control) stats",
            "  swift run ferry endpoints --addr \(endpoints) ls",
            "  swift run ferry kv --endpoints \(endpoints) put greeting hello   # found by name at the endpoint daemon",
            "  swift run ferry kv --endpoints \(endpoints) get greeting",
            "  swift run ferry call --addr \(endpoints) counter increment '{\"by\": 2}'",
            "  swift run ferry call --addr \(endpoints) wasm-counter increment '{\"by\": 2}'",
            "  swift run ferry objects ls --addr \(endpoints)",
            "Ctrl-C stops the node.",
        ]
        // A ServiceGroup stops services in reverse order: the registrations deregister first, the
        // daemon goes last.
        return Node(
            services: [daemon, kv, fileServer, objects] + apps
                + [front, SwitchControlService(socket: switchControlSocket)] + registrations,
            summary: summary,
            fileServer: fileServer,
            endpointDaemon: daemon,
            kvServer: kv,
            apps: apps,
            frontSwitch: front,
            objects: objects,
            switchControl: switchControl
        )
    }
}

/// Closes the switch's control socket at graceful shutdown.
struct SwitchControlService: Service {
    let socket: ControlSocket

    func run() async throws {
        try? await gracefulShutdown()
        self.socket.close()
    }
}
