import ArgumentParser
import FerryClient
import FerryEndpoints
import FerryExamples
import FerryGuest
import FerryObjects
import FerryWire
import Foundation
import Logging
import ServiceLifecycle

/// `ferry call NAME METHOD [ARGS]`: call an object, with no stub.
struct CallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call a method of an object by name and print the result as JSON.",
        discussion: """
            ARGS is JSON: an object passes arguments by name ('{"by": 2}'), an array by position \
            ('[2]'). The name is bound at the endpoint daemon (--addr) or on etcd (--registry), or \
            the object is called at one node directly (--node).
            """
    )

    @Option(help: "The endpoint daemon, HOST:PORT.", transform: parseAddress)
    var addr = ServiceEndpoint(host: "127.0.0.1", port: EndpointDaemon.defaultPort)

    @OptionGroup var etcd: RegistryOption

    @Option(help: "Call the object at this object node, HOST:PORT, without the daemon.", transform: parseAddress)
    var node: ServiceEndpoint?

    @OptionGroup var data: DataDirectoryOption

    @Argument(help: "The object's name, e.g. counter or counter/7.")
    var name: String

    @Argument(help: "The method.")
    var method: String

    @Argument(help: "The arguments as JSON.")
    var arguments: String?

    @Flag(help: "The method may run more than once: retry it anywhere until the deadline.")
    var idempotent = false

    @Option(help: "Seconds the call may take, retries included.", transform: parseSeconds)
    var timeout: Duration = .seconds(10)

    func run() async throws {
        let arguments: ObjectValue
        do {
            arguments =
                try self.arguments.map { try JSONDecoder().decode(ObjectValue.self, from: Data($0.utf8)) } ?? .list([])
        } catch {
            throw ValidationError("ARGS must be JSON, like '{\"by\": 2}' or '[2]'; got '\(self.arguments ?? "")'")
        }
        let client =
            self.node.map { ObjectClient(node: $0) } ?? ObjectClient(registry: self.etcd.address(or: self.addr))
        let reference = client.reference(self.name, deadline: self.timeout)
        do {
            let result = try await reference.invoke(self.method, arguments: arguments, idempotent: self.idempotent)
            await client.close()
            printLine(try jsonText(result))
        } catch {
            await client.close()
            throw CommandFailure("\(self.name).\(self.method): \(error)")
        }
    }
}

/// `ferry objects`: list, move and describe objects.
struct ObjectsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "objects",
        abstract: "List and move objects; generate stubs from WIT.",
        subcommands: [List.self, Relocate.self, Stubs.self, Segment.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls",
            abstract: "List the objects of every object node registered at the endpoint daemon."
        )

        @Option(help: "The endpoint daemon, HOST:PORT.", transform: parseAddress)
        var addr = ServiceEndpoint(host: "127.0.0.1", port: EndpointDaemon.defaultPort)

        @OptionGroup var etcd: RegistryOption

        @Flag(help: "Print JSON.")
        var json = false

        @OptionGroup var data: DataDirectoryOption

        func run() async throws {
            let registry = self.etcd.address(or: self.addr)
            let nodes: [ServiceEndpoint] = try await withRegistry(registry) { registry in
                do {
                    return try await registry.lookup(ObjectNames.nodes).flatMap(\.endpoints)
                } catch let error as ErrorMessage where error.code == .notFound {
                    return []
                }
            }
            var rows: [ObjectStatus] = []
            for node in nodes {
                let wire = try await WireClient.connect(
                    host: node.host,
                    port: node.port,
                    maxPayloadLength: ObjectLimits.maxPayloadLength
                )
                rows += try await wire.call(ObjectList()).decode(as: ObjectListing.self).objects
                await wire.close()
            }
            if self.json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                printLine(String(decoding: try encoder.encode(rows), as: UTF8.self))
                return
            }
            guard !rows.isEmpty else {
                printLine(nodes.isEmpty ? "no object nodes are registered at \(registry)" : "no objects")
                return
            }
            let table =
                [["OBJECT", "TYPE", "POLICY", "NODE", "EPOCH", "STATE", "CALLS"]]
                + rows.map { [$0.object, $0.type, $0.policy, $0.node, String($0.epoch), $0.state, String($0.calls)] }
            let widths = (0..<7).map { column in table.map { $0[column].count }.max()! }
            for row in table {
                printLine(
                    zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(
                        separator: "  "
                    )
                )
            }
        }
    }

    struct Relocate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "relocate",
            abstract: "Move an active object to another object node, with its state.",
            discussion: "Calls in flight finish first; later calls are forwarded, and clients re-bind by themselves."
        )

        @Option(help: "The endpoint daemon, HOST:PORT.", transform: parseAddress)
        var addr = ServiceEndpoint(host: "127.0.0.1", port: EndpointDaemon.defaultPort)

        @OptionGroup var etcd: RegistryOption

        @Option(help: "The node the object is active on, HOST:PORT (looked up when left out).", transform: parseAddress)
        var from: ServiceEndpoint?

        @Option(help: "The node to move it to, HOST:PORT.", transform: parseAddress)
        var to: ServiceEndpoint

        @OptionGroup var data: DataDirectoryOption

        @Argument(help: "The object's name.")
        var name: String

        func run() async throws {
            var source = self.from
            if source == nil {
                source = try await withRegistry(self.etcd.address(or: self.addr)) {
                    try await $0.lookup(ObjectNames.claim(self.name)).first?.endpoints.first
                }
            }
            guard let source else { throw CommandFailure("'\(self.name)' is not active on any node; give --from") }
            let wire = try await WireClient.connect(host: source.host, port: source.port)
            defer { Task { await wire.close() } }
            let request = ObjectRelocate(object: self.name, host: self.to.host, port: self.to.port)
            guard case .forward(let binding) = try await wire.call(request).decode(as: ObjectResult.self).outcome else {
                throw CommandFailure("\(source) answered the move with a value")
            }
            printLine("moved \(self.name) from \(source) to \(binding.node) (epoch \(binding.epoch))")
        }
    }

    struct Stubs: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stubs",
            abstract: "Generate Swift from a WIT interface: the server protocol and the client stub."
        )

        @Argument(help: "The .wit file.")
        var file: String

        @Option(help: "Where to write the server side (protocol <Name>Object).")
        var server: String?

        @Option(help: "Where to write the client side (struct <Name>Stub).")
        var client: String?

        @Option(help: "Modules the server file imports (repeatable).")
        var serverImport: [String] = ["FerryWire", "FerryObjects"]

        @Option(help: "Modules the client file imports (repeatable).")
        var clientImport: [String] = ["FerryWire", "FerryClient"]

        func run() throws {
            guard let data = FileManager.default.contents(atPath: self.file) else {
                throw CommandFailure("cannot read \(self.file)")
            }
            let wit = String(decoding: data, as: UTF8.self)
            do {
                let server = try StubGenerator.server(wit: wit, source: self.file, imports: self.serverImport)
                let client = try StubGenerator.client(wit: wit, source: self.file, imports: self.clientImport)
                if let path = self.server { try server.write(toFile: path, atomically: true, encoding: .utf8) }
                if let path = self.client { try client.write(toFile: path, atomically: true, encoding: .utf8) }
                if self.server == nil, self.client == nil { printLine(server + "\n" + client) }
            } catch let error as InterfaceParseError {
                throw CommandFailure("\(self.file): \(error)")
            }
        }
    }

    /// The process of a `segment`-isolated object: its node starts it and calls it on loopback.
    struct Segment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "segment",
            abstract: "Host objects of one type in this process for a node (started by the node).",
            shouldDisplay: false
        )

        @Option(help: "The built-in type to host: counter.")
        var type: String?

        @Option(help: "A guest type to host instead, NAME=PATH.wasm; --wit gives its interface.")
        var wasm: String?

        @Option(help: "The WIT interface of the --wasm guest.")
        var wit: String?

        func run() async throws {
            let shutdown = await ShutdownSignals()
            let objectType: ObjectType
            if let wasm {
                guard let equals = wasm.firstIndex(of: "="), let wit,
                    let text = FileManager.default.contents(atPath: wit)
                else { throw ValidationError("--wasm takes NAME=PATH and needs --wit FILE") }
                objectType = try GuestServant.type(
                    name: String(wasm[..<equals]),
                    module: try GuestModule(path: String(wasm[wasm.index(after: equals)...])),
                    interface: try ObjectInterface(wit: String(decoding: text, as: UTF8.self))
                )
            } else if self.type == "counter" {
                objectType = Counter.type()
            } else {
                throw ValidationError("give --type counter or --wasm NAME=PATH --wit FILE")
            }
            let logger = Logger(label: "ferry.segment")
            let adapter = try ObjectAdapter(
                name: "segment",
                policy: ObjectPolicy(activation: .transient, threading: .perInvocation, idleTimeout: .seconds(86_400)),
                types: [objectType],
                servesState: true,
                logger: logger
            )
            let server = try await ObjectServer.bind(adapters: [adapter], logger: logger)
            printLine("listening on 127.0.0.1:\(server.port)")
            try await shutdown.run([server], logger: logger)
        }
    }
}

/// A value as one line of JSON.
func jsonText(_ value: ObjectValue) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// A command that could not do its job, said in a sentence.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
