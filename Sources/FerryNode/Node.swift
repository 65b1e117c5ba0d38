import FerryEndpoints
import FerryServer
import Foundation
import Logging
import ServiceLifecycle

/// One Ferry node on this machine: the parts later issues add (objects, guests, switch) are
/// composed here from one configuration. Today it runs the endpoint daemon, the file server with
/// its control endpoint, and the key-value service, each registered at the daemon under a lease.
public struct Node: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        /// The file server's port; 0 picks a free one.
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
            handoffSocket: String? = nil
        ) {
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
        }
    }

    /// The node's long-running parts, to run under one ServiceGroup.
    public let services: [any Service]
    /// What runs where, one line each, for a person to read.
    public let summary: [String]
    public let fileServer: FileServer
    public let endpointDaemon: EndpointDaemon
    public let kvServer: KVServer

    /// `~/.ferry`: the node's permanent state survives restarts.
    public static var defaultDataDirectory: String {
        FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".ferry").path
    }

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
                port: configuration.httpPort,
                model: configuration.model,
                controlPort: configuration.controlPort,
                sessionTTL: .seconds(600),
                handoffSocket: configuration.handoffSocket
            ),
            logger: logger
        )
        let http = "\(fileServer.host):\(fileServer.port)"
        let control = fileServer.controlAddress.map { "\($0.host):\($0.port)" } ?? "-"
        let endpoints = "\(daemon.host):\(daemon.port)"
        let kvAddress = "\(kv.host):\(kv.port)"
        var registered: [(String, ServiceEndpoint, [String: String])] = [
            ("files", ServiceEndpoint(host: fileServer.host, port: fileServer.port), ["protocol": "http"]),
            ("kv", ServiceEndpoint(host: kv.host, port: kv.port), ["protocol": "ferrywire"]),
        ]
        if let address = fileServer.controlAddress {
            registered.append(
                ("files-control", ServiceEndpoint(host: address.host, port: address.port), ["protocol": "ferrywire"])
            )
        }
        let registrations = registered.map { name, endpoint, metadata in
            LeasedRegistration(
                name: name,
                endpoints: [endpoint],
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
            "files     http://\(http)/  (\(configuration.model.rawValue), root \(root))",
            "control   \(control)  (FerryWire: cancel, stats)",
            "kv        \(kvAddress)  (FerryWire, durable, \(kvPath))",
            "",
            "try:",
            "  curl -i http://\(http)/",
            "  curl -s -D- -o /dev/null -H 'Range: bytes=0-99' http://\(http)/big.bin",
            "  curl -s --limit-rate 100k -H 'TE: trailers' -D- -o /dev/null http://\(http)/big.bin &",
            "  swift run ferry control --addr \(control) cancel CONNECTION REQUEST   # ids from the Ferry-*-Id headers",
            "  swift run ferry control --addr \(control) stats",
            "  swift run ferry endpoints --addr \(endpoints) ls",
            "  swift run ferry kv --endpoints \(endpoints) put greeting hello   # found by name at the endpoint daemon",
            "  swift run ferry kv --endpoints \(endpoints) get greeting",
            "Ctrl-C stops the node.",
        ]
        // A ServiceGroup stops services in reverse order: the registrations deregister first, the
        // daemon goes last.
        return Node(
            services: [daemon, fileServer, kv] + registrations,
            summary: summary,
            fileServer: fileServer,
            endpointDaemon: daemon,
            kvServer: kv
        )
    }
}
