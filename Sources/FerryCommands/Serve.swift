import ArgumentParser
import FerryEndpoints
import FerryExamples
import FerryHTTP
import FerryKV
import FerryObjects
import FerryPosix
import FerryServer
import Logging
import ServiceLifecycle

/// `ferry serve ...`: run one kind of server in the foreground.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a server in the foreground.",
        subcommands: [Files.self, KV.self, Objects.self]
    )

    /// `ferry serve objects`: the example counters as persistent objects, on their own.
    struct Objects: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "objects",
            abstract: "Serve the example counters (counter, wasm-counter) as persistent objects over FerryWire.",
            discussion: """
                Prints 'listening on HOST:PORT' as its first line; call it with 'ferry call --node \
                HOST:PORT counter/NAME increment 1'. With write-through persistence (the default) a call \
                is answered only once its change is on disk, so it survives kill -9 and power loss.
                """
        )

        @OptionGroup var storage: StoreOption

        @Option(help: "The address to listen on.")
        var host = "127.0.0.1"

        @Option(help: "The port to listen on; 0 picks a free port.", transform: parsePort)
        var port = 0

        @Option(
            help: "The endpoint daemon to register at, HOST:PORT (none: called by address only).",
            transform: parseAddress
        )
        var endpoints: ServiceEndpoint?

        @OptionGroup var etcd: RegistryOption

        @Option(help: "When state is saved: write-through (every call) or on-deactivate (lossy on a crash).")
        var persistence: ObjectPolicy.Persistence = .writeThrough

        func run() async throws {
            let shutdown = await ShutdownSignals()
            let logger = Logger(label: "ferry.objects")
            let server = try await ObjectServer.bind(
                adapters: [
                    CounterAdapter.make(
                        store: try await self.storage.objectStore(logger: logger),
                        persistence: self.persistence,
                        logger: logger
                    )
                ],
                host: self.host,
                port: self.port,
                registry: self.etcd.registry ?? self.endpoints.map(RegistryAddress.daemon),
                logger: logger
            )
            printLine("listening on \(server.node)")
            try await shutdown.run([server], logger: logger)
        }
    }

    /// `ferry serve kv`: the stateful key-value service.
    struct KV: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kv",
            abstract: "Serve a durable key-value store (SQLite, WAL; or PostgreSQL) over FerryWire.",
            discussion: """
                Prints 'listening on HOST:PORT' as its first line. A write is acknowledged only once \
                it is on disk (with --store, once PostgreSQL has committed it), so it survives kill -9 \
                and power loss.
                """
        )

        @OptionGroup var storage: StoreOption

        @Option(help: "The address to listen on.")
        var host = "127.0.0.1"

        @Option(help: "The port to listen on; 0 picks a free port.", transform: parsePort)
        var port = 0

        @Option(help: "Event loops serving the connections; default: one for every two cores.")
        var loops: Int?

        @Option(
            name: .customLong("idle-poll-us"),
            help: """
                Microseconds a loop polls for the next request before it sleeps, while requests come \
                that close together: less latency for CPU spent polling, for machines with cores to \
                spare (100 suits one client on the same host); 0, the default: never.
                """
        )
        var idlePollMicroseconds = Int(KVServer.defaultIdlePoll.wholeMicroseconds)

        func validate() throws {
            if let loops, !(1...256).contains(loops) {
                throw ValidationError("--loops takes 1 to 256 event loops, got \(loops)")
            }
            if !(0...10_000).contains(self.idlePollMicroseconds) {
                throw ValidationError("--idle-poll-us takes 0 to 10000 microseconds, got \(self.idlePollMicroseconds)")
            }
        }

        func run() async throws {
            let shutdown = await ShutdownSignals()
            let logger = Logger(label: "ferry.kv")
            let server = try await KVServer.bind(
                store: try await self.storage.kvStore(logger: logger),
                host: self.host,
                port: self.port,
                loops: self.loops,
                idlePoll: .microseconds(self.idlePollMicroseconds),
                logger: logger
            )
            printLine("listening on \(server.host):\(server.port)")
            try await shutdown.run([server], logger: logger)
        }
    }

    /// `ferry serve files`: the seed's file server.
    struct Files: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "files",
            abstract: "Serve a directory over HTTP/1.1 under one of four execution models.",
            discussion: """
                Prints 'listening on HOST:PORT' as its first line. GET and HEAD, keep-alive, single \
                Range requests, ETag and Last-Modified validators. A request sent with 'TE: trailers' \
                gets a chunked body that a cancel (control endpoint or TCP urgent data) ends early \
                while the connection stays open.
                """
        )

        @Option(help: "The directory to serve.")
        var root: String

        @Option(help: "The address to listen on.")
        var host = "127.0.0.1"

        @Option(help: "The port to listen on; 0 picks a free port.", transform: parsePort)
        var port = 0

        @Option(help: "iterative, thread-per-request, dispatcher or event-driven.")
        var model: ExecutionModel = .eventDriven

        @Option(help: "Worker threads (dispatcher) or event loops (event-driven); default: the core count.")
        var workers: Int?

        @Option(help: "Requests the dispatcher queues before it answers 503.")
        var queue = 256

        @Option(
            help: "Port of the FerryWire control endpoint for out-of-band cancels; 0 picks one. None when left out.",
            transform: parsePort
        )
        var controlPort: Int?

        @Option(help: "Keep a session per client (a ferry-session cookie) this many seconds after its last request.")
        var sessions: Int?

        @Option(
            help: ArgumentHelp(
                "Also serve connections a switch hands over on this Unix socket (ferry switch --mode handoff).",
                valueName: "PATH"
            )
        )
        var handoffSocket: String?

        @Option(
            help: ArgumentHelp(
                "The Cache-Control of file answers, for caches in front (ferry edge), e.g. 'max-age=60'.",
                valueName: "VALUE"
            )
        )
        var cacheControl: String?

        @Flag(
            inversion: .prefixedNo,
            help: """
                Keep open files, and the bytes of files up to 64 KiB, between requests; inotify \
                drops what changes (nginx's open_file_cache). Turn off for a root changed where \
                inotify cannot see, such as NFS written by other machines.
                """
        )
        var openFileCache = true

        @OptionGroup(
            title: "Slow and idle clients (the cap is off by default: behind a switch, all come from its address)"
        )
        var clients: ClientLimitOptions

        func validate() throws {
            if let value = self.cacheControl, value.isEmpty || value.contains(where: { $0 == "\r" || $0 == "\n" }) {
                throw ValidationError("--cache-control takes a header value such as 'max-age=60', got '\(value)'")
            }
            if let sessions, sessions < 1 {
                throw ValidationError("--sessions must be at least 1 second, got \(sessions)")
            }
            if let workers, workers < 1 { throw ValidationError("--workers must be at least 1, got \(workers)") }
            if self.queue < 1 { throw ValidationError("--queue must be at least 1, got \(self.queue)") }
        }

        func run() async throws {
            let shutdown = await ShutdownSignals()
            let logger = Logger(label: "ferry.files")
            let server = try await FileServer.bind(
                .init(
                    root: self.root,
                    host: self.host,
                    port: self.port,
                    model: self.model,
                    workers: self.workers,
                    queueCapacity: self.queue,
                    controlPort: self.controlPort,
                    sessionTTL: self.sessions.map { .seconds($0) },
                    handoffSocket: self.handoffSocket,
                    cacheControl: self.cacheControl,
                    openFileCache: self.openFileCache,
                    timeouts: try self.clients.timeouts(),
                    maxConnectionsPerSource: self.clients.maxConnectionsPerSource ?? 0
                ),
                logger: logger
            )
            printLine("listening on \(server.host):\(server.port)")
            if let control = server.controlAddress { printLine("control on \(control.host):\(control.port)") }
            if let handoff = self.handoffSocket { printLine("taking handoffs on \(handoff)") }
            try await shutdown.run([server], logger: logger)
        }
    }
}

extension ExecutionModel: ExpressibleByArgument {}

/// Prints and flushes at once, so a script reading our stdout through a pipe sees the line now.
func printLine(_ line: String) {
    print(line)
    fflush(nil)
}

/// Prints a line for a person to standard error.
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

#if canImport(Glibc)
import Glibc
#endif

/// Prints rows under a header, each column as wide as its widest cell.
func printTable(_ header: [String], _ rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        let cells = row.enumerated().map { column, cell in
            column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
        }
        printLine(cells.joined(separator: "  "))
    }
}

extension ObjectPolicy.Persistence: ExpressibleByArgument {}
