import ArgumentParser
import FerryCDN
import FerryEndpoints
import FerryServer
import Logging
import ServiceLifecycle

/// `ferry edge`: a CDN's caching edge, and the commands that steer a running one.
struct EdgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edge",
        abstract: "A caching edge in front of an origin (ferry edge serve, the default); purge it, read its figures.",
        subcommands: [EdgeServe.self, EdgePurge.self, EdgeStatsCommand.self],
        defaultSubcommand: EdgeServe.self
    )
}

/// `ferry edge [serve]`: runs an edge.
struct EdgeServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "A caching HTTP/1.1 reverse proxy in front of one origin: a CDN's edge server.",
        discussion: """
            Prints 'listening on HOST:PORT' first and serves until SIGINT or SIGTERM. Keeps what \\
            the origin lets a shared cache keep (Cache-Control, Expires, Vary), revalidates stale \\
            objects with a conditional request, serves stale-while-revalidate and stale-if-error, \\
            makes one origin request for many concurrent misses of one object, and answers ranges \\
            from the cache. Answers carry Age and X-Cache: HIT, MISS or STALE; GET /.ferry/status \\
            gives its figures as JSON (the redirector's health check).
            """
    )

    @Option(help: ArgumentHelp("The origin server.", valueName: "http://HOST:PORT"))
    var origin: String

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on; 0 picks a free one.", transform: parsePort)
    var port = 0

    @Option(help: "The memory the cache may hold, e.g. 256MiB.", transform: parseSize)
    var cacheSize = 256 << 20

    @Option(help: ArgumentHelp("Also keep objects here, so the cache outlives a restart.", valueName: "DIR"))
    var cacheDir: String?

    @Option(help: "The region the edge serves, as the redirector's configuration names it.")
    var region: String?

    @Option(help: "The edge's name, as the redirector's configuration names it.")
    var name = "edge"

    @Option(
        help: "Seconds the origin may stay silent before the client gets 504 (or a stale copy).",
        transform: parseSeconds
    )
    var originTimeout: Duration = .seconds(10)

    @Option(
        name: .customLong("endpoints"),
        help: ArgumentHelp("Publish the edge's load and hit ratio at this endpoint daemon.", valueName: "HOST:PORT"),
        transform: parseAddress
    )
    var endpoints: ServiceEndpoint?

    @OptionGroup var etcd: RegistryOption

    @Option(
        help: ArgumentHelp(
            "A Unix socket that takes control requests (ferry edge purge|stats --control PATH).",
            valueName: "PATH"
        )
    )
    var control: String?

    @OptionGroup(title: "Slow and idle clients (the cap defaults to 1024 connections per address)")
    var clients: ClientLimitOptions

    func validate() throws {
        guard OriginAddress(self.origin) != nil else {
            throw ValidationError("--origin takes http://HOST:PORT, got '\(self.origin)'")
        }
        guard self.cacheSize >= 1 << 20 else { throw ValidationError("--cache-size must be at least 1MiB") }
    }

    func run() async throws {
        let shutdown = await ShutdownSignals()
        let logger = Logger(label: "ferry.edge")
        var configuration = EdgeServer.Configuration(origin: OriginAddress(self.origin)!)
        configuration.host = self.host
        configuration.port = self.port
        configuration.name = self.name
        configuration.region = self.region
        configuration.cacheBytes = self.cacheSize
        configuration.cacheDirectory = self.cacheDir
        configuration.originTimeout = self.originTimeout
        configuration.endpoints = self.etcd.registry ?? self.endpoints.map(RegistryAddress.daemon)
        configuration.clientTimeouts = try self.clients.timeouts()
        configuration.maxConnectionsPerSource = self.clients.maxConnectionsPerSource ?? 1024
        let edge = try await EdgeServer.bind(configuration, logger: logger)
        printLine("listening on \(edge.address)")
        var control: ControlSocket?
        if let path = self.control {
            control = try await ControlSocket.listen(at: path) { line, answer in answer.succeed(edge.control(line)) }
            printLine("control on \(path)")
        }
        defer { control?.close() }
        try await shutdown.run([edge], logger: logger)
    }
}

/// `ferry edge purge`: drop objects from a running edge's cache.
struct EdgePurge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Drop an object (every variant of it) from a running edge's cache, or everything under a prefix."
    )

    @Option(help: "The edge's control socket (its --control).")
    var control: String

    @Flag(help: "Drop every object whose path starts with the argument.")
    var prefix = false

    @Argument(
        help: ArgumentHelp("The object's path (with its query, if any), as clients ask for it.", valueName: "PATH")
    )
    var path: String

    func validate() throws {
        guard self.path.hasPrefix("/") else { throw ValidationError("the path starts with '/', got '\(self.path)'") }
    }

    func run() async throws {
        let answer = try await controlRequest(
            "\(self.prefix ? "purge-prefix" : "purge") \(self.path)",
            at: self.control,
            runningCommand: "ferry edge"
        )
        printLine(String(answer.dropFirst("ok: ".count)))
    }
}

/// `ferry edge stats`: a running edge's figures.
struct EdgeStatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Print a running edge's figures as JSON: requests, hits, misses, hit ratio, load, objects, bytes."
    )

    @Option(help: "The edge's control socket (its --control).")
    var control: String

    func run() async throws {
        printLine(try await controlRequest("stats", at: self.control, runningCommand: "ferry edge"))
    }
}

/// `ferry redirector`: a CDN's request router, and asking it why.
struct RedirectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redirector",
        abstract:
            "Send clients to the best edge by DNS and by HTTP (ferry redirector serve, the default); explain a choice.",
        subcommands: [RedirectorServe.self, RedirectorExplain.self],
        defaultSubcommand: RedirectorServe.self
    )
}

/// `ferry redirector [serve]`: runs a redirector.
struct RedirectorServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Answer DNS for the CDN's zone and HTTP with 302s, both by one policy of proximity, load and health.",
        discussion: """
            Prints 'listening on HOST:PORT' (HTTP) and 'dns on HOST:PORT' (UDP and TCP), and serves \\
            until SIGINT or SIGTERM; SIGHUP reloads --config (a bad file is refused with its line, \\
            and the running policy stays). See Examples/redirector.yaml.
            """
    )

    @Option(help: ArgumentHelp("The redirector's YAML configuration.", valueName: "FILE"))
    var config: String

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The HTTP port; 0 picks a free one.", transform: parsePort)
    var port = 0

    @Option(help: "The DNS port (UDP and TCP); 0 picks a free one.", transform: parsePort)
    var dnsPort = 0

    func run() async throws {
        let shutdown = await ShutdownSignals()
        let logger = Logger(label: "ferry.redirector")
        let configuration = try RedirectorConfiguration.load(path: self.config)
        let redirector = try await Redirector.start(
            configuration,
            host: self.host,
            port: self.port,
            dnsPort: self.dnsPort,
            configurationFile: self.config,
            logger: logger
        )
        printLine("listening on \(redirector.address)")
        printLine("dns on \(redirector.dnsAddress)")
        try await shutdown.run([redirector], logger: logger)
    }
}

/// `ferry redirector explain`: which edge a client would be sent to, and why.
struct RedirectorExplain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Check each edge once, then say which edge would answer a client (and a path) and why."
    )

    @Option(help: ArgumentHelp("The redirector's YAML configuration.", valueName: "FILE"))
    var config: String

    @Option(help: ArgumentHelp("The client's address.", valueName: "IP"))
    var client: String

    @Option(help: ArgumentHelp("The path asked for, as HTTP redirection knows it.", valueName: "/PATH"))
    var path: String?

    func validate() throws {
        guard IPAddress(self.client) != nil else {
            throw ValidationError("--client takes an IPv4 or IPv6 address, got '\(self.client)'")
        }
    }

    func run() async throws {
        let configuration = try RedirectorConfiguration.load(path: self.config)
        var logger = Logger(label: "ferry.redirector")
        logger.logLevel = .error
        for line in try await Redirector.explain(
            configuration,
            client: IPAddress(self.client),
            path: self.path,
            logger: logger
        ) {
            printLine(line)
        }
    }
}
