import FerryEndpoints
import Foundation
import Yams

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
/// endpoints: 127.0.0.1:7411      # the endpoint daemon, for discover
/// routes:                        # l7, first match wins
///   - path=/api/ group=api
/// health_check: http:/healthz    # tcp or http:/PATH
/// health_interval: 2             # seconds
/// slow_start: 10                 # seconds; none when left out
/// max_connections: 1000          # per backend
/// sticky_cookie: ferry           # l7
/// client_timeout: 10             # l7, seconds
/// backend_timeout: 30            # l7, seconds
/// threads: 2
/// control: /tmp/switch.sock
/// ```
public struct SwitchConfiguration: Sendable, Equatable {
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
    public var endpoints = ServiceEndpoint(host: "127.0.0.1", port: EndpointDaemon.defaultPort)
    public var routes: [HTTPRoute] = []
    public var healthCheck = HealthCheck.tcp
    public var healthInterval: Duration = .seconds(2)
    public var slowStart: Duration?
    public var maxConnections: Int?
    public var stickyCookie: String?
    public var clientTimeout: Duration = .seconds(10)
    public var backendTimeout: Duration = .seconds(30)
    public var threads = 2
    public var control: String?

    public init() {}

    /// The l7 options this configuration gives.
    public var httpOptions: HTTPSwitch.Options {
        .init(
            routes: self.routes,
            stickyCookie: self.stickyCookie,
            clientTimeout: self.clientTimeout,
            backendTimeout: self.backendTimeout
        )
    }

    /// Why this configuration cannot run, if it cannot.
    public func problem() -> String? {
        if self.backends.isEmpty && self.discover.isEmpty {
            return "a switch needs backends: give --backend HOST:PORT (or discover: NAME in a file)"
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

    /// Reads and checks a configuration file.
    public static func load(path: String) throws -> SwitchConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw SwitchConfigurationError(file: path, line: nil, field: nil, message: "cannot read it: \(error)")
        }
        return try Self.parse(text, file: path)
    }

    /// Parses and checks configuration text; `file` names it in errors.
    public static func parse(_ text: String, file: String = "configuration") throws -> SwitchConfiguration {
        func fail(_ node: Node?, _ field: String?, _ message: String) -> SwitchConfigurationError {
            SwitchConfigurationError(file: file, line: node?.mark?.line, field: field, message: message)
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw SwitchConfigurationError(file: file, line: nil, field: nil, message: "not YAML: \(error)")
        }
        guard let root, let top = root.mapping else { throw fail(root, nil, "the file must be a mapping of settings") }
        var configuration = SwitchConfiguration()
        for (keyNode, value) in top {
            let key = keyNode.string ?? ""
            func string() throws -> String {
                guard let text = value.scalar?.string, !text.isEmpty else { throw fail(value, key, "must be a string") }
                return text
            }
            func list() throws -> [String] {
                guard let items = value.sequence else { throw fail(value, key, "must be a list") }
                return try items.map { item in
                    guard let text = item.scalar?.string else { throw fail(item, key, "each entry must be a string") }
                    return text
                }
            }
            func seconds() throws -> Duration {
                guard let number = value.float ?? value.int.map(Double.init), number > 0 else {
                    throw fail(value, key, "must be a positive number of seconds")
                }
                return .milliseconds(Int64(number * 1000))
            }
            func parsed<T>(_ make: (String) -> T?, _ expected: String) throws -> T {
                let text = try string()
                guard let result = make(text) else { throw fail(value, key, "must be \(expected), got '\(text)'") }
                return result
            }
            switch key {
            case "mode":
                configuration.mode = try parsed(Mode.init(rawValue:), "l4, handoff or l7")
            case "listen":
                configuration.listen = try parsed({ ServiceEndpoint($0, allowingAnyPort: true) }, "HOST:PORT")
            case "balance":
                configuration.balance = try parsed(
                    BalancePolicy.init(rawValue:),
                    BalancePolicy.allCases.map(\.rawValue).joined(separator: ", ")
                )
            case "backends":
                configuration.backends = try list().map { text in
                    guard let backend = BackendSpec(text) else {
                        throw fail(value, key, "'\(text)' is not [GROUP=]HOST:PORT|unix:PATH[@WEIGHT]")
                    }
                    return backend
                }
            case "discover":
                configuration.discover = try list().map { text in
                    guard let discovery = Discovery(text) else {
                        throw fail(value, key, "'\(text)' is not [GROUP=]NAME[@WEIGHT]")
                    }
                    return discovery
                }
            case "endpoints":
                configuration.endpoints = try parsed({ ServiceEndpoint($0) }, "HOST:PORT")
            case "routes":
                configuration.routes = try list().map { text in
                    guard let route = HTTPRoute(text) else {
                        throw fail(
                            value,
                            key,
                            "'\(text)' is not 'host=NAME path=/PREFIX header=NAME:VALUE group=GROUP'"
                        )
                    }
                    return route
                }
            case "health_check":
                configuration.healthCheck = try parsed(HealthCheck.init, "tcp or http:/PATH")
            case "health_interval":
                configuration.healthInterval = try seconds()
            case "slow_start":
                configuration.slowStart = try seconds()
            case "max_connections":
                guard let limit = value.int, limit >= 1 else { throw fail(value, key, "must be a whole number >= 1") }
                configuration.maxConnections = limit
            case "sticky_cookie":
                configuration.stickyCookie = try string()
            case "client_timeout":
                configuration.clientTimeout = try seconds()
            case "backend_timeout":
                configuration.backendTimeout = try seconds()
            case "threads":
                guard let threads = value.int, threads >= 1 else {
                    throw fail(value, key, "must be a whole number >= 1")
                }
                configuration.threads = threads
            case "control":
                configuration.control = try string()
            default:
                throw fail(keyNode, key, "unknown setting; see Examples/switch.yaml for the ones there are")
            }
        }
        if let problem = configuration.problem() { throw fail(root, nil, problem) }
        return configuration
    }
}

/// A configuration file that cannot be used, with where and why.
public struct SwitchConfigurationError: Error, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var field: String?
    public var message: String

    public var description: String {
        var place = self.file
        if let line { place += ":\(line)" }
        if let field { place += " (\(field))" }
        return "\(place): \(self.message)"
    }
}
