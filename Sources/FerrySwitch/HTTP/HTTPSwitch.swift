import CFerryLinux
import FerryEndpoints
import FerryHTTP
import FerryPosix
import FerryWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// The application-layer switch (`ferry switch --mode l7`): it reads each HTTP/1.1 request,
/// chooses a backend by the request's content, and forwards the request and its answer.
///
/// - Routing: rules on the Host, the path prefix and header values pick a group of backends
///   (``HTTPRoute``); the balancer picks within it, by LARD (``BalancePolicy/locality``) when
///   asked, so the same content reaches the same backend and its cache stays hot.
/// - A sticky cookie, when configured, keeps a client on the backend that served it first.
/// - `X-Forwarded-For` carries the client's address; connections to backends are kept alive and
///   reused, per switch thread.
/// - A request that is safe to repeat (GET, HEAD, OPTIONS, PUT, DELETE, TRACE, without a body)
///   whose backend fails before answering is sent again to another backend.
/// - Requests are parsed strictly (``HTTPRequestParser``): anything a smuggler could use —
///   Content-Length with Transfer-Encoding, two Content-Lengths, a malformed chunked body — is
///   answered 400 and that connection alone is closed. A backend that answers garbage gives 502.
public final class HTTPSwitch: Sendable {
    public struct Options: Sendable {
        public var routes: [HTTPRoute]
        /// The cookie that keeps a client on one backend; no stickiness when nil.
        public var stickyCookie: String?
        /// How long a client may take over a request head or body, and stay idle between requests.
        public var client: ClientTimeouts
        /// How long a backend may take to start answering, and stay silent while it answers.
        public var backendTimeout: Duration
        /// Idle keep-alive connections kept per backend and switch thread.
        public var idlePerBackend: Int
        public var maxHeadLength: Int
        /// Connections one client address may hold open; 0 for no cap.
        public var maxConnectionsPerSource: Int
        /// The largest answer body held back until whole, so that a backend that breaks it off
        /// leaves the client nothing and an idempotent request goes to another backend; larger
        /// answers stream as they come. 0 streams every answer (a broken one then closes the
        /// client's connection).
        public var holdBack: Int
        public static let defaultHoldBack = 64 * 1024
        /// What `--hold-back` and `hold_back:` take.
        public static let holdBackRange = 0...(1 << 30)

        public init(
            routes: [HTTPRoute] = [],
            stickyCookie: String? = nil,
            client: ClientTimeouts = ClientTimeouts(),
            backendTimeout: Duration = .seconds(30),
            idlePerBackend: Int = 64,
            maxHeadLength: Int = 16 * 1024,
            maxConnectionsPerSource: Int = 1024,
            holdBack: Int = Options.defaultHoldBack
        ) {
            self.routes = routes
            self.stickyCookie = stickyCookie
            self.client = client
            self.backendTimeout = backendTimeout
            self.idlePerBackend = idlePerBackend
            self.maxHeadLength = maxHeadLength
            self.maxConnectionsPerSource = maxConnectionsPerSource
            self.holdBack = holdBack
        }
    }

    public let balancer: Balancer
    public let address: ServiceEndpoint
    private let listener: SwitchListener
    private let loops: [HTTPLoop]
    private let backends: SwitchBackends

    public init(
        listen listener: SwitchListener,
        backends: [BackendSpec],
        policy: BalancePolicy = .roundRobin,
        maxConnectionsPerBackend: Int? = nil,
        healthCheck: HealthCheck = .tcp,
        healthCheckInterval: Duration? = .seconds(2),
        slowStart: Duration? = nil,
        options: Options = Options(),
        threads: Int = 2,
        logger: Logger = Logger(label: "ferry.switch")
    ) throws {
        for route in options.routes where !backends.contains(where: { $0.group == route.group }) {
            throw SwitchError.unknownGroup(route.description)
        }
        let plan = RoutingPlan(backends: backends, options: options)
        let backends = try SwitchBackends(
            backends,
            policy: policy,
            maxConnections: maxConnectionsPerBackend,
            slowStart: slowStart,
            healthCheck: healthCheck,
            healthCheckInterval: healthCheckInterval,
            logger: logger
        )
        self.backends = backends
        self.balancer = backends.balancer
        self.listener = listener
        self.address = listener.address
        let sources = SourceLimit(maximum: options.maxConnectionsPerSource)
        self.loops = try (0..<max(1, threads)).map { index in
            try HTTPLoop(
                thread: SwitchThread(name: "ferry-switch-\(index)", listener: listener.fd),
                balancer: backends.balancer,
                addresses: backends.addresses,
                plan: plan,
                sources: sources,
                logger: logger
            )
        }
        try backends.start(self.loops)
    }

    public func checkHealthNow() {
        self.backends.healthChecker.checkAll()
    }

    /// Stops accepting and closes every connection.
    public func stop() { self.backends.stop(self.loops) }

    /// Stops accepting; requests in progress finish (their answers say `Connection: close`),
    /// idle keep-alive connections close, and then the threads end.
    public func retire() { self.backends.retire(self.loops) }
}
