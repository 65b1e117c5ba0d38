import ArgumentParser
import FerryEndpoints
import FerryWire
import Foundation
import Logging
import ServiceLifecycle

/// `ferry endpointd`: the endpoint daemon in the foreground.
struct EndpointDaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "endpointd",
        abstract: "Run the endpoint daemon: services register under leases, clients look them up and watch them.",
        discussion: "Prints 'listening on HOST:PORT' as its first line. The well-known port is 7411."
    )

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on; 0 picks a free port.", transform: parsePort)
    var port = EndpointDaemon.defaultPort

    func run() async throws {
        let shutdown = await ShutdownSignals()
        let logger = Logger(label: "ferry.endpointd")
        let daemon = try await EndpointDaemon.bind(host: self.host, port: self.port, logger: logger)
        printLine("listening on \(daemon.host):\(daemon.port)")
        try await shutdown.run([daemon], logger: logger)
    }
}

/// `ferry endpoints`: talk to an endpoint daemon.
struct EndpointsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "endpoints",
        abstract: "Register, look up, list and watch services at an endpoint daemon (or on etcd, with --registry).",
        subcommands: [Register.self, Lookup.self, List.self, Watch.self]
    )

    @Option(help: "The endpoint daemon, HOST:PORT.", transform: parseAddress)
    var addr = EndpointDaemon.defaultAddress

    @OptionGroup var etcd: RegistryOption

    @OptionGroup var data: DataDirectoryOption

    /// Where names are: etcd when --registry names it, else the daemon at --addr.
    var address: RegistryAddress { self.etcd.address(or: self.addr) }

    /// Runs `body` with a connection to the registry and closes it after.
    func withClient<Result>(_ body: (any Registry) async throws -> Result) async throws -> Result {
        try await withRegistry(self.address, body)
    }

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "register",
            abstract: "Register a service and keep its lease renewed until interrupted (or once, with --once).",
            discussion: "Without --once the entry disappears one ttl after this command stops."
        )

        @ParentCommand var endpoints: EndpointsCommand

        @Argument(help: "The service's name.")
        var name: String

        @Argument(help: "Where it is served, HOST:PORT (one or more).")
        var endpoint: [ServiceEndpoint]

        @Option(help: "The lease's length in seconds.", transform: parseSeconds)
        var ttl: Duration = .seconds(30)

        @Option(name: .customLong("meta"), help: "Metadata as KEY=VALUE (repeatable).")
        var metadata: [String] = []

        @Flag(help: "Register one lease and exit; the entry lives for one ttl.")
        var once = false

        @Flag(help: "Print the lease as JSON.")
        var json = false

        func validate() throws {
            _ = try self.parsedMetadata()
        }

        func parsedMetadata() throws -> [String: String] {
            var metadata: [String: String] = [:]
            for pair in self.metadata {
                guard let equals = pair.firstIndex(of: "="), equals > pair.startIndex else {
                    throw ValidationError("--meta takes KEY=VALUE, got '\(pair)'")
                }
                metadata[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
            return metadata
        }

        func run() async throws {
            let metadata = try self.parsedMetadata()
            let address = self.endpoints.address
            if self.once {
                let lease = try await self.endpoints.withClient {
                    try await $0.register(self.name, endpoints: self.endpoint, metadata: metadata, ttl: self.ttl)
                }
                printLine(
                    self.json
                        ? try jsonLine(lease)
                        : "registered \(self.name), lease \(lease.leaseID), ttl \(lease.ttlMilliseconds) ms"
                )
                return
            }
            let shutdown = await ShutdownSignals()
            let logger = Logger(label: "ferry.endpoints")
            let registration = LeasedRegistration(
                name: self.name,
                endpoints: self.endpoint,
                metadata: metadata,
                ttl: self.ttl,
                registry: address,
                logger: logger
            )
            printLine(
                "registering \(self.name) at \(address), renewing every \(registration.renewalInterval); Ctrl-C deregisters"
            )
            try await shutdown.run([registration], logger: logger)
        }
    }

    struct Lookup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lookup",
            abstract: "Print where a service is; exits non-zero when nothing is registered under the name."
        )

        @ParentCommand var endpoints: EndpointsCommand

        @Argument(help: "The service's name.")
        var name: String

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let entries = try await self.endpoints.withClient { try await $0.lookup(self.name) }
            printEntries(entries, json: self.json)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List registered services.")

        @ParentCommand var endpoints: EndpointsCommand

        @Argument(help: "Only names that start with this.")
        var prefix = ""

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let entries = try await self.endpoints.withClient { try await $0.list(prefix: self.prefix) }
            printEntries(entries, json: self.json)
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "watch",
            abstract: "Print a service's entries now and again at every change, until interrupted.",
            discussion:
                "Each change prints one line per entry and then a line '--', or one JSON object per line with --json."
        )

        @ParentCommand var endpoints: EndpointsCommand

        @Argument(help: "The service's name.")
        var name: String

        @Flag(help: "Print one JSON object per change.")
        var json = false

        func run() async throws {
            let client = try await self.endpoints.address.connect(logger: Logger(label: "ferry.endpoints"))
            for try await change in client.watch(self.name) {
                if self.json {
                    printLine(try jsonLine(change))
                } else {
                    printEntries(change.entries, json: false)
                    printLine("-- revision \(change.revision): \(change.entries.count) entries")
                }
            }
            throw ValidationError("\(self.endpoints.address) closed the watch")
        }
    }
}

private func printEntries(_ entries: [EndpointEntry], json: Bool) {
    if json {
        printLine((try? jsonLine(entries)) ?? "[]")
        return
    }
    print(EndpointEntry.lines(entries), terminator: "")
    fflush(nil)
}

func jsonLine(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

extension ServiceEndpoint: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

/// Parses an `--addr` option with an error that says what it takes.
func parseAddress(_ text: String) throws -> ServiceEndpoint {
    guard let address = ServiceEndpoint(text) else {
        throw ValidationError("--addr must be HOST:PORT, got '\(text)'")
    }
    return address
}
