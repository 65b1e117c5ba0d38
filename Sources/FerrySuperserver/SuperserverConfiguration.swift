import FerryEndpoints
import Foundation
import Yams

/// What the superserver runs: one entry per endpoint, read from a YAML file.
///
/// ```yaml
/// endpoints: 127.0.0.1:7411        # the endpoint daemon to register at; "off" registers nowhere
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
/// ```
public struct SuperserverConfiguration: Equatable, Sendable {
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
        /// The line of the file where the service starts, for messages.
        public var line = 0

        /// What identifies the socket: a reload keeps the socket of a service with the same one.
        /// Port 0 (any free port) is told apart by the service's name.
        public var socketKey: String {
            "\(self.transport.rawValue)/\(self.listen)" + (self.listen.port == 0 ? "/\(self.name)" : "")
        }
    }

    /// The endpoint daemon to register services at; nil registers nowhere.
    public var endpoints: ServiceEndpoint?
    public var services: [Service]

    public init(endpoints: ServiceEndpoint?, services: [Service]) {
        self.endpoints = endpoints
        self.services = services
    }

    /// Reads and checks a configuration file.
    public static func load(path: String) throws -> SuperserverConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw SuperserverConfigurationError(file: path, line: nil, field: nil, message: "cannot read it: \(error)")
        }
        return try Self.parse(text, file: path)
    }

    /// Parses and checks configuration text; `file` names it in errors.
    public static func parse(_ text: String, file: String = "configuration") throws -> SuperserverConfiguration {
        func fail(_ node: Node?, _ field: String?, _ message: String) -> SuperserverConfigurationError {
            SuperserverConfigurationError(file: file, line: node?.mark?.line, field: field, message: message)
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw SuperserverConfigurationError(file: file, line: Self.line(of: error), field: nil, message: "\(error)")
        }
        guard let root, let top = root.mapping else {
            throw fail(root, nil, "the file must be a mapping with a 'services' list")
        }
        var endpoints: ServiceEndpoint? = ServiceEndpoint(host: "127.0.0.1", port: EndpointDaemon.defaultPort)
        var services: [Service] = []
        for (keyNode, value) in top {
            let key = keyNode.string ?? ""
            switch key {
            case "endpoints":
                let text = value.string ?? ""
                if text == "off" {
                    endpoints = nil
                } else {
                    guard let address = ServiceEndpoint(text) else {
                        throw fail(value, key, "must be HOST:PORT or off, got '\(text)'")
                    }
                    endpoints = address
                }
            case "services":
                guard let list = value.sequence else { throw fail(value, key, "must be a list of services") }
                for item in list { services.append(try Self.service(item, fail: fail)) }
            default:
                throw fail(keyNode, key, "unknown key; the file takes 'endpoints' and 'services'")
            }
        }
        guard !services.isEmpty else { throw fail(root, "services", "no service is configured") }
        var seenNames: [String: Int] = [:]
        var seenSockets: [String: Service] = [:]
        for service in services {
            if let first = seenNames[service.name] {
                throw SuperserverConfigurationError(
                    file: file,
                    line: service.line,
                    field: "name",
                    message: "service '\(service.name)' is already configured at line \(first)"
                )
            }
            seenNames[service.name] = service.line
            if service.listen.port != 0, let other = seenSockets[service.socketKey] {
                throw SuperserverConfigurationError(
                    file: file,
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

    private static func service(
        _ node: Node,
        fail: (Node?, String?, String) -> SuperserverConfigurationError
    ) throws -> Service {
        guard let mapping = node.mapping else { throw fail(node, nil, "a service must be a mapping of fields") }
        var fields: [String: (key: Node, value: Node)] = [:]
        for (key, value) in mapping {
            let name = key.string ?? ""
            guard Self.serviceFields.contains(name) else {
                throw fail(
                    key,
                    name,
                    "unknown field; a service takes \(Self.serviceFields.sorted().joined(separator: ", "))"
                )
            }
            fields[name] = (key, value)
        }
        func string(_ name: String) throws -> String? {
            guard let field = fields[name] else { return nil }
            guard let value = field.value.scalar?.string, !value.isEmpty else {
                throw fail(field.value, name, "must be a non-empty string")
            }
            return value
        }
        func integer(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
            guard let field = fields[name] else { return nil }
            guard let value = field.value.int, range.contains(value) else {
                throw fail(field.value, name, "must be a whole number in \(range.lowerBound)...\(range.upperBound)")
            }
            return value
        }
        func choice<Choice: RawRepresentable & CaseIterable>(_ name: String, _ type: Choice.Type) throws -> Choice?
        where Choice.RawValue == String {
            guard let text = try string(name) else { return nil }
            guard let value = Choice(rawValue: text) else {
                let allowed = Choice.allCases.map(\.rawValue).joined(separator: ", ")
                throw fail(fields[name]?.value, name, "'\(text)' is not one of \(allowed)")
            }
            return value
        }

        guard let name = try string("name") else { throw fail(node, "name", "every service needs a name") }
        guard (try? EndpointTable.validateName(name)) != nil else {
            throw fail(fields["name"]?.value, "name", "'\(name)' is not a service name: no spaces, at most 253 bytes")
        }
        guard let listenText = try string("listen") else {
            throw fail(node, "listen", "service '\(name)' needs listen: HOST:PORT")
        }
        guard let listen = ServiceEndpoint(listenText) ?? Self.portZero(listenText) else {
            throw fail(fields["listen"]?.value, "listen", "must be HOST:PORT, got '\(listenText)'")
        }
        guard let mode = try choice("mode", Mode.self) else {
            throw fail(node, "mode", "service '\(name)' needs mode: builtin, nowait or wait")
        }
        var service = Service(name: name, listen: listen, mode: mode, line: node.mark?.line ?? 0)
        service.transport = try choice("protocol", TransportProtocol.self) ?? .tcp
        service.builtin = try choice("builtin", Builtin.self)
        service.program = try string("program")
        service.user = try string("user")
        service.maxInstances = try integer("max_instances", in: 1...100_000) ?? service.maxInstances
        service.perSourceRate = try integer("per_source_rate", in: 0...1_000_000) ?? 0
        if let args = fields["args"] {
            guard let list = args.value.sequence, let strings = Optional(list.compactMap(\.string)),
                strings.count == list.count
            else { throw fail(args.value, "args", "must be a list of strings") }
            service.args = strings
        }
        if let env = fields["env"] {
            guard let pairs = env.value.mapping else {
                throw fail(env.value, "env", "must be a mapping of NAME: value")
            }
            for (key, value) in pairs {
                guard let key = key.string, let value = value.string else {
                    throw fail(env.value, "env", "must map names to strings")
                }
                service.environment[key] = value
            }
        }
        switch mode {
        case .builtin:
            guard service.builtin != nil else {
                throw fail(
                    node,
                    "builtin",
                    "builtin service '\(name)' needs builtin: echo, discard, daytime or chargen"
                )
            }
            if let program = fields["program"] {
                throw fail(program.key, "program", "a builtin service runs no program")
            }
        case .nowait, .wait:
            guard let program = service.program else {
                throw fail(node, "program", "\(mode.rawValue) service '\(name)' needs program: /path/to/executable")
            }
            guard program.hasPrefix("/"), FileManager.default.isExecutableFile(atPath: program) else {
                throw fail(
                    fields["program"]?.value,
                    "program",
                    "'\(program)' is not an executable file given by absolute path"
                )
            }
            if let builtin = fields["builtin"] {
                throw fail(builtin.key, "builtin", "only a builtin service takes builtin")
            }
            if mode == .nowait, service.transport == .udp {
                throw fail(
                    fields["mode"]?.value,
                    "mode",
                    "a udp service is builtin or wait: datagrams have no connection to hand a process"
                )
            }
        }
        if let user = service.user, getpwnam(user) == nil {
            throw fail(fields["user"]?.value, "user", "no such user '\(user)'")
        }
        return service
    }

    static let serviceFields: Set<String> = [
        "name", "listen", "protocol", "mode", "builtin", "program", "args", "env", "user", "max_instances",
        "per_source_rate",
    ]

    /// `HOST:0`, which ``ServiceEndpoint`` refuses for registrations, picks a free port here.
    private static func portZero(_ text: String) -> ServiceEndpoint? {
        guard text.hasSuffix(":0"), let endpoint = ServiceEndpoint(String(text.dropLast(2)) + ":1") else { return nil }
        return ServiceEndpoint(host: endpoint.host, port: 0)
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return nil
        }
    }
}

/// A configuration that cannot be used, with where and why.
public struct SuperserverConfigurationError: Error, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var field: String?
    public var message: String

    public var description: String {
        var place = self.file
        if let line { place += ":\(line)" }
        if let field { place += ": \(field)" }
        return "\(place): \(self.message)"
    }
}

#if canImport(Glibc)
import Glibc
#endif
