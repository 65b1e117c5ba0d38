import ArgumentParser
import FerryEndpoints
import FerryKV
import FerryServer
import FerryWire

/// `ferry kv`: read and write a key-value service.
struct KVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv",
        abstract: "Get, put, delete, compare-and-set and list keys of a key-value service.",
        discussion: """
            Without --addr the service is found by its name, 'kv', at the endpoint daemon \
            (--endpoints, the well-known 127.0.0.1:7411): start one with 'ferry up'.
            """,
        subcommands: [Get.self, Put.self, Delete.self, CompareAndSet.self, List.self]
    )

    @Option(help: "The key-value service, HOST:PORT.", transform: parseAddress)
    var addr: ServiceEndpoint?

    @Option(help: "The endpoint daemon that names the service when --addr is left out.", transform: parseAddress)
    var endpoints = ServiceEndpoint(host: "127.0.0.1", port: EndpointDaemon.defaultPort)

    @OptionGroup var etcd: RegistryOption

    @Option(help: "The service's name at the endpoint daemon.")
    var service = "kv"

    @OptionGroup var data: DataDirectoryOption

    /// Runs `body` with a connection to the service, found directly or by name.
    func withClient<Result>(_ body: (KVClient) async throws -> Result) async throws -> Result {
        let address: ServiceEndpoint
        if let addr = self.addr {
            address = addr
        } else {
            let entries = try await withRegistry(self.etcd.address(or: self.endpoints)) {
                try await $0.lookup(self.service)
            }
            address = entries[0].endpoints[0]
        }
        return try await using(try await KVClient.connect(host: address.host, port: address.port), body)
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "get",
            abstract: "Print a key's value; exits 1 when it does not exist."
        )
        @ParentCommand var kv: KVCommand
        @Argument var key: String

        func run() async throws {
            guard let value = try await self.kv.withClient({ try await $0.get(self.key) }) else {
                printError("no such key: \(self.key)")
                throw ExitCode(1)
            }
            printLine(String(decoding: value, as: UTF8.self))
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "put",
            abstract: "Store a value; exits 0 only once the service has acknowledged it durable."
        )
        @ParentCommand var kv: KVCommand
        @Argument var key: String
        @Argument var value: String

        func run() async throws {
            let written = try await self.kv.withClient { try await $0.put(self.key, Array(self.value.utf8)) }
            printLine("stored \(self.key) (version \(written.version))")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "del",
            abstract: "Delete a key; exits 1 when it did not exist."
        )
        @ParentCommand var kv: KVCommand
        @Argument var key: String

        func run() async throws {
            guard try await self.kv.withClient({ try await $0.delete(self.key) }).applied else {
                printError("no such key: \(self.key)")
                throw ExitCode(1)
            }
            printLine("deleted \(self.key)")
        }
    }

    struct CompareAndSet: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cas",
            abstract: "Set NEW only if the key holds OLD now; exits 1 when it does not.",
            discussion: "With --absent, OLD is left out and the key must not exist."
        )
        @ParentCommand var kv: KVCommand
        @Argument var key: String
        @Argument(help: "OLD NEW, or NEW with --absent.") var values: [String]
        @Flag(help: "Set only if the key does not exist.") var absent = false

        func validate() throws {
            guard self.values.count == (self.absent ? 1 : 2) else {
                throw ValidationError(self.absent ? "cas --absent takes KEY NEW" : "cas takes KEY OLD NEW")
            }
        }

        func run() async throws {
            let expected = self.absent ? nil : Array(self.values[0].utf8)
            let new = Array(self.values.last!.utf8)
            let written = try await self.kv.withClient {
                try await $0.compareAndSet(self.key, expected: expected, value: new)
            }
            guard written.applied else {
                printError("\(self.key) does not hold the expected value; nothing changed")
                throw ExitCode(1)
            }
            printLine("stored \(self.key) (version \(written.version))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List keys and values by prefix.")
        @ParentCommand var kv: KVCommand
        @Argument var prefix = ""
        @Option(help: "The most keys to print.") var limit = 1000
        @Flag(help: "Print a JSON object.") var json = false

        func run() async throws {
            let list = try await self.kv.withClient { try await $0.list(prefix: self.prefix, limit: self.limit) }
            let pairs = list.entries.map { ($0.key, String(decoding: $0.value, as: UTF8.self)) }
            if self.json {
                printLine(try jsonLine(Dictionary(pairs, uniquingKeysWith: { first, _ in first })))
            } else {
                for (key, value) in pairs { printLine("\(key)\t\(value)") }
                if list.truncated { printError("(more keys match; raise --limit)") }
            }
        }
    }
}
