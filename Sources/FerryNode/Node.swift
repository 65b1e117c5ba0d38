import FerryServer
import Logging
import ServiceLifecycle

/// One Ferry node on this machine: the parts later issues add (endpoint daemon, objects, guests,
/// switch) are composed here from one configuration. Today it serves a directory with the file
/// server and its control endpoint.
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

        public init(
            host: String = "127.0.0.1",
            httpPort: Int = 8080,
            controlPort: Int = 8081,
            root: String? = nil,
            model: ExecutionModel = .eventDriven
        ) {
            self.host = host
            self.httpPort = httpPort
            self.controlPort = controlPort
            self.root = root
            self.model = model
        }
    }

    /// The node's long-running parts, to run under one ServiceGroup.
    public let services: [any Service]
    /// What runs where, one line each, for a person to read.
    public let summary: [String]
    public let fileServer: FileServer

    /// Binds every part of the node.
    public static func start(_ configuration: Configuration, logger: Logger) async throws -> Node {
        let root = try configuration.root ?? DemoSite.write()
        let fileServer = try await FileServer.bind(
            .init(
                root: root,
                host: configuration.host,
                port: configuration.httpPort,
                model: configuration.model,
                controlPort: configuration.controlPort
            ),
            logger: logger
        )
        let http = "\(fileServer.host):\(fileServer.port)"
        let control = fileServer.controlAddress.map { "\($0.host):\($0.port)" } ?? "-"
        let summary = [
            "listening on \(http)",
            "files     http://\(http)/  (\(configuration.model.rawValue), root \(root))",
            "control   \(control)  (FerryWire: cancel, stats)",
            "",
            "try:",
            "  curl -i http://\(http)/",
            "  curl -s -D- -o /dev/null -H 'Range: bytes=0-99' http://\(http)/big.bin",
            "  curl -s --limit-rate 100k -H 'TE: trailers' -D- -o /dev/null http://\(http)/big.bin &",
            "  swift run ferry control --addr \(control) cancel CONNECTION REQUEST   # ids from the Ferry-*-Id headers",
            "  swift run ferry control --addr \(control) stats",
            "Ctrl-C stops the node.",
        ]
        return Node(services: [fileServer], summary: summary, fileServer: fileServer)
    }
}
