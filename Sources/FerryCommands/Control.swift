import ArgumentParser
import FerryEndpoints
import FerryServer
import FerryWire

/// `ferry control`: talk to a server's control endpoint.
struct ControlCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control",
        abstract: "Send out-of-band requests to a server's control endpoint.",
        subcommands: [Cancel.self, Stats.self]
    )

    @Option(help: "The control endpoint, HOST:PORT (ferry up puts it on 127.0.0.1:8081).", transform: parseAddress)
    var addr = ServiceEndpoint(host: "127.0.0.1", port: 8081)

    @OptionGroup var data: DataDirectoryOption

    func client() -> ControlClient {
        ControlClient(host: self.addr.host, port: self.addr.port)
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cancel",
            abstract: "Cancel a request in progress; exits 1 when it was not running."
        )

        @ParentCommand var control: ControlCommand

        @Argument(help: "The connection id (the response's Ferry-Connection-Id header).")
        var connection: UInt64

        @Argument(help: "The request id (the response's Ferry-Request-Id header).")
        var request: UInt64

        func run() async throws {
            switch try await self.control.client().cancel(connectionID: self.connection, requestID: self.request) {
            case .cancelled:
                printLine("cancelled request \(self.request) of connection \(self.connection)")
            case .notRunning:
                printLine("request \(self.request) of connection \(self.connection) is not running")
                throw ExitCode(1)
            }
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "stats", abstract: "Print the server's counters.")

        @ParentCommand var control: ControlCommand

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let stats = try await self.control.client().stats()
            if self.json {
                printLine("{" + stats.entries.map { "\"\($0.name)\": \($0.value)" }.joined(separator: ", ") + "}")
            } else {
                for entry in stats.entries { printLine("\(entry.name) \(entry.value)") }
            }
        }
    }
}
