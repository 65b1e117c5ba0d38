import FerryConfiguration
import FerryEndpoints
import Foundation

/// What the superserver runs: one entry per endpoint, read from a YAML file.
///
/// ```yaml
/// endpoints: 127.0.0.1:7411        # the endpoint daemon (or etcd://HOST:PORT,...) to register at; "off": nowhere
/// services:
///   - name: echo
///     listen: 127.0.0.1:7007
///     protocol: tcp                # tcp (default) or udp
///     mode: builtin                # builtin, nowait or wait
///     builtin: echo                # echo, discard, daytime or chargen
///   - name: cat
///     listen: 127.0.0.1:7008
///     mode: nowait
///     program: /bin/cat
///     args: []                     # after argv[0], which is the program's file name
///     env: {LANG: C}
///     user: nobody                 # run as this user (the superserver must be root)
///     max_instances: 64            # concurrent processes or connections; more are refused
///     per_source_rate: 20          # new connections per second from one address; 0: no limit
///   - name: boxed-cat
///     listen: 127.0.0.1:7009
///     mode: nowait
///     program: /bin/cat            # inside the container's root
///     container: {rootfs: /srv/rootfs, memory: 64M, pids: 32, cpus: 0.5, net: none}
/// ```
public struct SuperserverConfiguration: Equatable, Sendable, ConfigurationFileContents {
    public enum Mode: String, Sendable, CaseIterable {
        /// A new process per connection, the connection as its standard input and output.
        case nowait
        /// One process gets the listening (or datagram) socket and serves it until it exits.
        case wait
        /// Served inside the superserver.
        case builtin
    }

    public enum TransportProtocol: String, Sendable, CaseIterable {
        case tcp, udp
    }

    public enum Builtin: String, Sendable, CaseIterable {
        case echo, discard, daytime, chargen
    }

    public struct Service: Equatable, Sendable {
        public var name: String
        public var listen: ServiceEndpoint
        public var transport: TransportProtocol = .tcp
        public var mode: Mode
        public var builtin: Builtin?
        public var program: String?
        public var args: [String] = []
        public var environment: [String: String] = [:]
        public var user: String?
        public var maxInstances = 64
        public var perSourceRate = 0
        /// Runs the program in a container of its own (`ferry container run`), one per start.
        public var container: Container?
        /// The line of the file where the service starts, for messages.
        public var line = 0

        /// What identifies the socket: a reload keeps the socket of a service with the same one.
        /// Port 0 (any free port) is told apart by the service's name.
        public var socketKey: String {
            "\(self.transport.rawValue)/\(self.listen)" + (self.listen.port == 0 ? "/\(self.name)" : "")
        }
    }

    /// The container a service's program runs in: its root and limits, as `ferry container run`
    /// takes them.
    public struct Container: Equatable, Sendable {
        public var rootfs: String
        public var memory: String?
        public var pids: Int?
        public var cpus: Double?
        public var network = "none"

        /// The flags of `ferry container run` that make this container.
        public var flags: [String] {
            var flags = ["--rootfs", self.rootfs, "--net", self.network]
            if let memory = self.memory { flags += ["--memory", memory] }
            if let pids = self.pids { flags += ["--pids", String(pids)] }
            if let cpus = self.cpus { flags += ["--cpus", String(cpus)] }
            return flags
        }

        static let fields: Set<String> = ["rootfs", "memory", "pids", "cpus", "net"]
    }

    /// Where services are registered (an endpoint daemon, or etcd); nil registers nowhere.
    public var endpoints: RegistryAddress?
    public var services: [Service]

    public init(endpoints: RegistryAddress?, services: [Service]) {
        self.endpoints = endpoints
        self.services = services
    }

    public static func read(_ file: ConfigurationFile) throws(ConfigurationError) -> SuperserverConfiguration {
        var endpoints: RegistryAddress? = .daemon(ServiceEndpoint(host: "127.0.0.1", port: EndpointDaemon.defaultPort))
        var services: [Service] = []
        for (key, value) in file.settings {
            switch key.field ?? "" {
            case "endpoints":
                endpoints =
                    value.text == "off"
                    ? nil : try value.parsed(RegistryAddress.expected + ", or off") { RegistryAddress($0) }
            case "services":
                for item in try value.list() { services.append(try Self.service(item)) }
            default:
                throw key.refused("unknown key; the file takes 'endpoints' and 'services'")
            }
        }
        guard !services.isEmpty else {
            throw ConfigurationError(
                file: file.file,
                line: file.root.line,
                field: "services",
                message: "no service is configured"
            )
        }
        var seenNames: [String: Int] = [:]
        var seenSockets: [String: Service] = [:]
        for service in services {
            if let first = seenNames[service.name] {
                throw ConfigurationError(
                    file: file.file,
                    line: service.line,
                    field: "name",
                    message: "service '\(service.name)' is already configured at line \(first)"
                )
            }
            seenNames[service.name] = service.line
            if service.listen.port != 0, let other = seenSockets[service.socketKey] {
                throw ConfigurationError(
                    file: file.file,
                    line: service.line,
                    field: "listen",
                    message:
                        "\(service.transport.rawValue) \(service.listen) is already taken by service '\(other.name)' at line \(other.line)"
                )
            }
            seenSockets[service.socketKey] = service
        }
        return SuperserverConfiguration(endpoints: endpoints, services: services)
    }

    private static func service(_ item: ConfigurationValue) throws(ConfigurationError) -> Service {
        guard item.node.mapping != nil else { throw item.refused("a service must be a mapping of fields") }
        var fields: [String: (key: ConfigurationValue, value: ConfigurationValue)] = [:]
        for (key, value) in try item.entries() {
            let name = key.field ?? ""
            guard Self.serviceFields.contains(name) else {
                throw key.refused(
                    "unknown field; a service takes \(Self.serviceFields.sorted().joined(separator: ", "))"
                )
            }
            fields[name] = (key, value)
        }
        func missing(_ field: String, _ message: String) -> ConfigurationError {
            ConfigurationError(file: item.file, line: item.line, field: field, message: message)
        }

        guard let name = try fields["name"]?.value.string() else { throw missing("name", "every service needs a name") }
        guard (try? EndpointTable.validateName(name)) != nil else {
            throw fields["name"]!.value.refused("'\(name)' is not a service name: no spaces, at most 253 bytes")
        }
        guard let listen = try fields["listen"]?.value.listenAddress() else {
            throw missing("listen", "service '\(name)' needs listen: HOST:PORT")
        }
        guard let mode = try fields["mode"]?.value.choice(Mode.self) else {
            throw missing("mode", "service '\(name)' needs mode: builtin, nowait or wait")
        }
        var service = Service(name: name, listen: listen, mode: mode, line: item.line ?? 0)
        service.transport = try fields["protocol"]?.value.choice(TransportProtocol.self) ?? .tcp
        service.builtin = try fields["builtin"]?.value.choice(Builtin.self)
        service.program = try fields["program"]?.value.string()
        service.user = try fields["user"]?.value.string()
        service.maxInstances = try fields["max_instances"]?.value.integer(in: 1...100_000) ?? service.maxInstances
        service.perSourceRate = try fields["per_source_rate"]?.value.integer(in: 0...1_000_000) ?? 0
        if let args = fields["args"] {
            service.args = try args.value.strings()
        }
        if let env = fields["env"] {
            for (key, value) in try env.value.entries() {
                guard let text = value.text else { throw value.refused("must map names to strings") }
                service.environment[key.field ?? ""] = text
            }
        }
        switch mode {
        case .builtin:
            guard service.builtin != nil else {
                throw missing("builtin", "builtin service '\(name)' needs builtin: echo, discard, daytime or chargen")
            }
            if let program = fields["program"] ?? fields["container"] {
                throw program.key.refused("a builtin service runs no program")
            }
        case .nowait, .wait:
            guard let program = service.program else {
                throw missing("program", "\(mode.rawValue) service '\(name)' needs program: /path/to/executable")
            }
            if let container = fields["container"] {
                service.container = try Self.container(container.value)
            }
            // A container's program is looked for in the container's root, not the host's.
            let root = service.container?.rootfs ?? ""
            guard program.hasPrefix("/"), FileManager.default.isExecutableFile(atPath: root + program) else {
                throw fields["program"]!.value.refused(
                    "'\(program)' is not an executable file given by absolute path\(root.isEmpty ? "" : " in \(root)")"
                )
            }
            if let builtin = fields["builtin"] {
                throw builtin.key.refused("only a builtin service takes builtin")
            }
            if mode == .nowait, service.transport == .udp {
                throw fields["mode"]!.value.refused(
                    "a udp service is builtin or wait: datagrams have no connection to hand a process"
                )
            }
        }
        if let user = service.user, getpwnam(user) == nil {
            throw fields["user"]!.value.refused("no such user '\(user)'")
        }
        return service
    }

    static let serviceFields: Set<String> = [
        "name", "listen", "protocol", "mode", "builtin", "program", "args", "env", "user", "max_instances",
        "per_source_rate", "container",
    ]

    private static func container(_ value: ConfigurationValue) throws(ConfigurationError) -> Container {
        var fields: [String: ConfigurationValue] = [:]
        for (key, value) in try value.entries() {
            let name = key.field ?? ""
            guard Container.fields.contains(name) else {
                throw key.refused(
                    "unknown field; a container takes \(Container.fields.sorted().joined(separator: ", "))"
                )
            }
            fields[name] = value
        }
        guard let rootfs = try fields["rootfs"]?.string() else {
            throw value.refused("a container needs rootfs: /path/to/root-file-system")
        }
        var isDirectory: ObjCBool = false
        guard rootfs.hasPrefix("/"), FileManager.default.fileExists(atPath: rootfs, isDirectory: &isDirectory),
            isDirectory.boolValue
        else {
            throw fields["rootfs"]!.refused("'\(rootfs)' is not a directory given by absolute path")
        }
        var container = Container(rootfs: rootfs)
        container.memory = try fields["memory"]?.string()
        container.pids = try fields["pids"]?.integer(in: 1...4_194_304)
        if let cpus = fields["cpus"] {
            guard let value = cpus.text.flatMap(Double.init), value >= 0.01 else {
                throw cpus.refused("give a number of CPUs from 0.01 up, like 0.5")
            }
            container.cpus = value
        }
        if let network = fields["net"] {
            let text = try network.string()
            guard ["none", "host"].contains(text) else {
                throw network.refused(
                    "a superserver's container takes net: none or host (its socket comes from the superserver)"
                )
            }
            container.network = text
        }
        return container
    }
}

#if canImport(Glibc)
import Glibc
#endif
