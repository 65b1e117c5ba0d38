import FerryConfiguration
import FerryEndpoints
import FerryHTTP
import Foundation

/// Everything a switch runs with, from `ferry switch` flags or a YAML file (`--config`); a
/// reload (SIGHUP) reads the file again. Backends and routes are written as the flags take them.
///
/// ```yaml
/// mode: l7                       # l4, handoff or l7
/// listen: 127.0.0.1:8000         # a reload keeps the socket: this cannot change
/// balance: lard                  # roundrobin, leastconn, weighted, source or lard
/// backends:                      # [GROUP=]HOST:PORT|unix:PATH[@WEIGHT]
///   - 127.0.0.1:8081
///   - api=127.0.0.1:8082@2
/// discover:                      # [GROUP=]NAME[@WEIGHT]: a service at the endpoint daemon, followed
///   - app=app
/// endpoints: 127.0.0.1:7411      # the endpoint daemon (or etcd://HOST:PORT,...), for discover
/// routes:                        # l7, first match wins
///   - path=/api/ group=api
/// health_check: http:/healthz    # tcp or http:/PATH
/// health_interval: 2             # seconds
/// slow_start: 10                 # seconds; none when left out
/// max_connections: 1000          # per backend
/// sticky_cookie: ferry           # l7
/// header_timeout: 10             # l7, seconds from a request head's first byte to its end
/// body_timeout: 30               # l7, seconds a request body may pause
/// idle_timeout: 60               # l7, seconds between requests
/// client_timeout: 10             # l7, sets header_timeout and idle_timeout both (older files)
/// max_connections_per_source: 1024  # l7, per client address; 0 for no cap
/// backend_timeout: 30            # l7, seconds
/// threads: 2
/// control: /tmp/switch.sock
/// ```
public struct SwitchConfiguration: Sendable, Equatable, ConfigurationFileContents {
    public enum Mode: String, Sendable, CaseIterable {
        case l4, handoff, l7
    }

    /// A service followed at the endpoint daemon: each of its endpoints is a backend.
    public struct Discovery: Sendable, Equatable {
        public var service: String
        public var group: String?
        public var weight: Int

        public init(service: String, group: String? = nil, weight: Int = 1) {
            self.service = service
            self.group = group
            self.weight = weight
        }

        /// Parses `[GROUP=]NAME[@WEIGHT]`.
        public init?(_ text: String) {
            var rest = Substring(text)
            var weight = 1
            if let at = rest.lastIndex(of: "@") {
                guard let parsed = Int(rest[rest.index(after: at)...]), parsed >= 1 else { return nil }
                weight = parsed
                rest = rest[..<at]
            }
            var group: String?
            if let equals = rest.firstIndex(of: "=") {
                group = String(rest[..<equals])
                rest = rest[rest.index(after: equals)...]
                guard group?.isEmpty == false else { return nil }
            }
            guard !rest.isEmpty, !rest.contains(" ") else { return nil }
            self.init(service: String(rest), group: group, weight: weight)
        }

        /// The backends the service's endpoints make.
        func backends(_ endpoints: [ServiceEndpoint]) -> [BackendSpec] {
            endpoints.map { BackendSpec(endpoint: $0, weight: self.weight, group: self.group) }
        }
    }

    public var mode = Mode.l4
    public var listen = ServiceEndpoint(host: "127.0.0.1", port: 8000)
    public var balance = BalancePolicy.roundRobin
    public var backends: [BackendSpec] = []
    public var discover: [Discovery] = []
    /// Where discovered services are named: an endpoint daemon, or etcd.
    public var endpoints = RegistryAddress.daemon(ServiceEndpoint(host: "127.0.0.1", port: EndpointDaemon.defaultPort))
    public var routes: [HTTPRoute] = []
    public var healthCheck = HealthCheck.tcp
    public var healthInterval: Duration = .seconds(2)
    public var slowStart: Duration?
    public var maxConnections: Int?
    public var stickyCookie: String?
    public var clientTimeouts = ClientTimeouts()
    public var maxConnectionsPerSource = 1024
    /// l7: the largest answer body held back until whole (see ``HTTPSwitch/Options/holdBack``).
    public var holdBack = HTTPSwitch.Options.defaultHoldBack
    public var backendTimeout: Duration = .seconds(30)
    public var threads = 2
    public var control: String?

    public init() {}

    /// The l7 options this configuration gives.
    public var httpOptions: HTTPSwitch.Options {
        .init(
            routes: self.routes,
            stickyCookie: self.stickyCookie,
            client: self.clientTimeouts,
            backendTimeout: self.backendTimeout,
            maxConnectionsPerSource: self.maxConnectionsPerSource,
            holdBack: self.holdBack
        )
    }

    /// Why this configuration cannot run, if it cannot.
    public func problem() -> String? {
        if self.backends.isEmpty && self.discover.isEmpty {
            return
                "a switch needs backends: give --backend HOST:PORT or --discover NAME (backends: or discover: in a file)"
        }
        if self.mode != .l7 && (!self.routes.isEmpty || self.stickyCookie != nil) {
            return "routes and sticky_cookie need mode l7"
        }
        if self.mode == .handoff {
            if let tcp = self.backends.first(where: { if case .tcp = $0.address { true } else { false } }) {
                return SwitchError.handoffNeedsUnixBackend(tcp.address.description).description
            }
            if self.healthCheck != .tcp { return SwitchError.handoffChecksConnectOnly.description }
        }
        let groups = Set(self.backends.compactMap(\.group) + self.discover.compactMap(\.group))
        if let route = self.routes.first(where: { !groups.contains($0.group) }) {
            return SwitchError.unknownGroup(route.description).description
        }
        if self.threads < 1 { return "threads must be at least 1" }
        return nil
    }

    public static func read(_ file: ConfigurationFile) throws(ConfigurationError) -> SwitchConfiguration {
        var configuration = SwitchConfiguration()
        for (key, value) in file.settings {
            switch key.field ?? "" {
            case "mode":
                configuration.mode = try value.parsed("l4, handoff or l7", Mode.init(rawValue:))
            case "listen":
                configuration.listen = try value.listenAddress()
            case "balance":
                configuration.balance = try value.choice(BalancePolicy.self)
            case "backends":
                configuration.backends = try value.strings().map { (text) throws(ConfigurationError) in
                    guard let backend = BackendSpec(text) else {
                        throw value.refused("'\(text)' is not [GROUP=]HOST:PORT|unix:PATH[@WEIGHT]")
                    }
                    return backend
                }
            case "discover":
                configuration.discover = try value.strings().map { (text) throws(ConfigurationError) in
                    guard let discovery = Discovery(text) else {
                        throw value.refused("'\(text)' is not [GROUP=]NAME[@WEIGHT]")
                    }
                    return discovery
                }
            case "endpoints":
                configuration.endpoints = try value.parsed(RegistryAddress.expected) { RegistryAddress($0) }
            case "routes":
                configuration.routes = try value.strings().map { (text) throws(ConfigurationError) in
                    guard let route = HTTPRoute(text) else {
                        throw value.refused("'\(text)' is not 'host=NAME path=/PREFIX header=NAME:VALUE group=GROUP'")
                    }
                    return route
                }
            case "health_check":
                configuration.healthCheck = try value.parsed("tcp or http:/PATH", HealthCheck.init)
            case "health_interval":
                configuration.healthInterval = try value.seconds()
            case "slow_start":
                configuration.slowStart = try value.seconds()
            case "max_connections":
                configuration.maxConnections = try value.integer(in: 1...Int.max)
            case "sticky_cookie":
                configuration.stickyCookie = try value.string()
            case "header_timeout":
                configuration.clientTimeouts.header = try value.seconds()
            case "body_timeout":
                configuration.clientTimeouts.body = try value.seconds()
            case "idle_timeout":
                configuration.clientTimeouts.idle = try value.seconds()
            case "client_timeout":
                let seconds = try value.seconds()
                configuration.clientTimeouts.header = seconds
                configuration.clientTimeouts.idle = seconds
            case "backend_timeout":
                configuration.backendTimeout = try value.seconds()
            case "max_connections_per_source":
                configuration.maxConnectionsPerSource = try value.integer(in: 0...Int.max)
            case "hold_back":
                configuration.holdBack = try value.integer(in: HTTPSwitch.Options.holdBackRange)
            case "threads":
                configuration.threads = try value.integer(in: 1...Int.max)
            case "control":
                configuration.control = try value.string()
            default:
                throw key.refused("unknown setting; see Examples/switch.yaml for the ones there are")
            }
        }
        if let problem = configuration.problem() { throw file.root.refused(problem) }
        return configuration
    }
}
