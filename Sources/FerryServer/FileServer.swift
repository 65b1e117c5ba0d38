import FerryHTTP
import FerryPosix
import Logging
import Metrics
import NIOCore
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// The seed's file server: serves a directory over HTTP/1.1 under one of the four execution
/// models, with an optional control endpoint for out-of-band cancels.
///
/// ```swift
/// let server = try await FileServer.bind(.init(root: "/srv/www", model: .dispatcher), logger: logger)
/// print("listening on \(server.host):\(server.port)")
/// try await ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
/// ```
public final class FileServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var root: String
        public var host: String
        /// 0 picks a free port.
        public var port: Int
        public var model: ExecutionModel
        /// Worker threads for `dispatcher`, event loops for `event-driven`; the core count when nil.
        public var workers: Int?
        /// Requests the dispatcher queues for its workers before it answers 503.
        public var queueCapacity: Int
        /// The control endpoint's port; none when nil, 0 picks a free port.
        public var controlPort: Int?
        /// How long a client's session lives after its last request; no sessions when nil.
        public var sessionTTL: Duration?
        /// A Unix socket on which a switch hands over accepted connections (TCP handoff); none when nil.
        public var handoffSocket: String?
        /// The Cache-Control of file answers (`max-age=60`), for caches in front; none when nil.
        public var cacheControl: String?
        /// Keep open files and small files' bytes between requests, watched by inotify (nginx's
        /// `open_file_cache`). Off for a root that changes where inotify cannot see (NFS).
        public var openFileCache: Bool
        /// How long a client may take over a request head, or stay idle between requests (the
        /// file server takes no request bodies, so `body` does not apply).
        public var timeouts: ClientTimeouts
        /// Connections one client address may hold open; 0 for no cap (the default, as nginx's:
        /// behind a switch every connection comes from the switch's address).
        public var maxConnectionsPerSource: Int

        public init(
            root: String,
            host: String = "127.0.0.1",
            port: Int = 0,
            model: ExecutionModel = .eventDriven,
            workers: Int? = nil,
            queueCapacity: Int = 256,
            controlPort: Int? = nil,
            sessionTTL: Duration? = nil,
            handoffSocket: String? = nil,
            cacheControl: String? = nil,
            openFileCache: Bool = true,
            timeouts: ClientTimeouts = ClientTimeouts(),
            maxConnectionsPerSource: Int = 0
        ) {
            self.root = root
            self.host = host
            self.port = port
            self.model = model
            self.workers = workers
            self.queueCapacity = queueCapacity
            self.controlPort = controlPort
            self.sessionTTL = sessionTTL
            self.handoffSocket = handoffSocket
            self.cacheControl = cacheControl
            self.openFileCache = openFileCache
            self.timeouts = timeouts
            self.maxConnectionsPerSource = maxConnectionsPerSource
        }
    }

    public let configuration: Configuration
    /// The bound data address.
    public let host: String
    public let port: Int
    /// The bound control address, when there is a control endpoint.
    public let controlAddress: (host: String, port: Int)?
    public let metrics: ServerMetrics
    public let registry: ConnectionRegistry
    /// The clients' sessions (soft state), when the configuration asks for them.
    public let sessions: SessionStore<FileSession>?

    private let frontEnd: FrontEnd
    private let watcher: UrgentDataWatcher
    private let control: ControlEndpoint?
    private let handoff: HandoffReceiver?
    private let logger: Logger

    private enum FrontEnd {
        case blocking(BlockingFrontEnd)
        case eventDriven(EventDrivenFrontEnd)
    }

    private init(
        configuration: Configuration,
        listener: TCPListener,
        frontEnd: FrontEnd,
        watcher: UrgentDataWatcher,
        control: ControlEndpoint?,
        handoff: HandoffReceiver?,
        metrics: ServerMetrics,
        registry: ConnectionRegistry,
        sessions: SessionStore<FileSession>?,
        logger: Logger
    ) {
        self.sessions = sessions
        self.configuration = configuration
        self.host = listener.address.host
        self.port = listener.address.port
        self.controlAddress = control?.address
        self.frontEnd = frontEnd
        self.watcher = watcher
        self.control = control
        self.handoff = handoff
        self.metrics = metrics
        self.registry = registry
        self.logger = logger
    }

    /// Opens the root, binds the ports and starts serving, so the addresses are known and the
    /// server answers before ``run()`` is called.
    /// - Throws: when the root cannot be served or a port cannot be bound; the error names which.
    public static func bind(
        _ configuration: Configuration,
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) async throws -> FileServer {
        // sendfile(2) has no MSG_NOSIGNAL: a client that hangs up mid-body would otherwise kill the
        // process with SIGPIPE. Like nginx, a server process ignores it and handles EPIPE.
        signal(SIGPIPE, SIG_IGN)
        let files = try FileService(
            root: configuration.root,
            sessionTTL: configuration.sessionTTL,
            cacheControl: configuration.cacheControl,
            openFileCache: configuration.openFileCache
        )
        let listener = try TCPListener(host: configuration.host, port: configuration.port)
        let registry = ConnectionRegistry(maxPerSource: configuration.maxConnectionsPerSource)
        let metrics = ServerMetrics(model: configuration.model, factory: metricsFactory)
        let responder = BlockingResponder(
            files: files,
            openFiles: configuration.model == .eventDriven ? nil : files.makeCache(),
            registry: registry,
            metrics: metrics,
            logger: logger,
            sendTimeout: configuration.timeouts.idle
        )
        let watcher = try UrgentDataWatcher(registry: registry, metrics: metrics, logger: logger)
        let workers = max(1, configuration.workers ?? System.coreCount)
        let frontEnd: FrontEnd
        switch configuration.model {
        case .iterative:
            frontEnd = .blocking(
                try BlockingFrontEnd(
                    listener: listener,
                    executor: .inline,
                    responder: responder,
                    watcher: watcher,
                    timeouts: configuration.timeouts
                )
            )
        case .threadPerRequest:
            frontEnd = .blocking(
                try BlockingFrontEnd(
                    listener: listener,
                    executor: .threadPerRequest,
                    responder: responder,
                    watcher: watcher,
                    timeouts: configuration.timeouts
                )
            )
        case .dispatcher:
            let pool = try WorkerPool(workers: workers, capacity: max(1, configuration.queueCapacity), metrics: metrics)
            frontEnd = .blocking(
                try BlockingFrontEnd(
                    listener: listener,
                    executor: .pool(pool),
                    responder: responder,
                    watcher: watcher,
                    timeouts: configuration.timeouts
                )
            )
        case .eventDriven:
            frontEnd = .eventDriven(
                try EventDrivenFrontEnd(
                    listener: listener,
                    loops: workers,
                    responder: responder,
                    watcher: watcher,
                    timeouts: configuration.timeouts
                )
            )
        }
        var control: ControlEndpoint?
        if let controlPort = configuration.controlPort {
            control = try await ControlEndpoint.bind(
                host: configuration.host,
                port: controlPort,
                registry: registry,
                metrics: metrics,
                logger: logger
            )
        }
        var handoff: HandoffReceiver?
        if let path = configuration.handoffSocket {
            handoff = try HandoffReceiver(path: path, logger: logger) { descriptor in
                switch frontEnd {
                case .blocking(let frontEnd): frontEnd.adopt(descriptor)
                case .eventDriven(let frontEnd): frontEnd.adopt(descriptor)
                }
            }
        }
        let server = FileServer(
            configuration: configuration,
            listener: listener,
            frontEnd: frontEnd,
            watcher: watcher,
            control: control,
            handoff: handoff,
            metrics: metrics,
            registry: registry,
            sessions: files.sessions,
            logger: logger
        )
        try server.start()
        return server
    }

    /// Serves until graceful shutdown, then stops accepting and lets requests in progress end.
    ///
    /// Serving itself starts in ``bind(_:logger:)``, on the server's own threads, so the server
    /// answers even while the caller's tasks are busy; `run` ties its end to the service lifecycle.
    public func run() async throws {
        try? await gracefulShutdown()
        self.logger.info("file server on \(self.host):\(self.port) shutting down")
        self.handoff?.stop()
        switch self.frontEnd {
        case .blocking(let frontEnd): frontEnd.stop()
        case .eventDriven(let frontEnd): frontEnd.stop()
        }
        await self.control?.close()
        self.watcher.stop()
    }

    private func start() throws {
        try self.watcher.start()
        switch self.frontEnd {
        case .blocking(let frontEnd): try frontEnd.start()
        case .eventDriven(let frontEnd): try frontEnd.start()
        }
        self.logger.info(
            "serving \(self.configuration.root) on \(self.host):\(self.port) (\(self.configuration.model.rawValue))"
        )
    }
}
