import FerryConfiguration
import FerryEndpoints
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// `ferry redirector`: a CDN's request router. One policy (proximity by coverage zones and
/// distances, load and health from active checks) answers two ways: as the authoritative DNS
/// server of the CDN's zone (UDP and TCP, EDNS Client Subnet) and as an HTTP server answering
/// `302` to the chosen edge.
public final class Redirector: Service, Sendable {
    /// Where the HTTP side listens.
    public let address: ServiceEndpoint
    /// Where DNS is answered, over UDP and TCP alike.
    public let dnsAddress: ServiceEndpoint
    let core: RedirectorCore
    private let channels: [Channel]
    private let reload: HangupReload?

    private init(
        core: RedirectorCore,
        address: ServiceEndpoint,
        dnsAddress: ServiceEndpoint,
        channels: [Channel],
        reload: HangupReload?
    ) {
        self.core = core
        self.address = address
        self.dnsAddress = dnsAddress
        self.channels = channels
        self.reload = reload
    }

    /// Binds the HTTP side at `host:port` and DNS at `host:dnsPort` (0 for any; UDP and TCP get the
    /// same port), and runs one round of checks first, so the first answers already know which
    /// edges are up.
    public static func start(
        _ configuration: RedirectorConfiguration,
        host: String,
        port: Int,
        dnsPort: Int,
        configurationFile: String? = nil,
        logger: Logger
    ) async throws -> Redirector {
        var configuration = configuration
        if let address = IPAddress(host), address != .v4(0), address != .v6(0) {
            configuration.nameServerAddress = address
        }
        let core = try RedirectorCore(configuration, logger: logger)
        // Trapped before anyone hears the redirector is up: until then a SIGHUP would end it.
        let reload = await configurationFile.asyncMap { await HangupReload(path: $0) }
        await core.checkEdges()
        let group = MultiThreadedEventLoopGroup.singleton
        let (datagrams, tcp) = try await Self.bindDNS(host: host, port: dnsPort, core: core, group: group)
        let http = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(HTTPRedirectHandler(redirector: core))
                }
            }
            .bind(host: host, port: port).get()
        return Redirector(
            core: core,
            address: ServiceEndpoint(host: host, port: http.localAddress?.port ?? port),
            dnsAddress: ServiceEndpoint(host: host, port: datagrams[0].localAddress?.port ?? dnsPort),
            channels: datagrams + [tcp, http],
            reload: reload
        )
    }

    /// UDP first (port 0 picks one), a socket on each event loop sharing the port (SO_REUSEPORT:
    /// the kernel spreads the clients over them, so every core answers), then TCP on the same
    /// port; a port TCP cannot have is given back and another tried.
    private static func bindDNS(
        host: String,
        port: Int,
        core: RedirectorCore,
        group: MultiThreadedEventLoopGroup
    ) async throws -> ([Channel], Channel) {
        var attempt = 0
        while true {
            attempt += 1
            let loops = Array(group.makeIterator())
            var datagrams = [try await Self.bindDatagrams(host: host, port: port, on: loops[0], core: core)]
            let bound = datagrams[0].localAddress?.port ?? port
            do {
                for loop in loops.dropFirst() {
                    datagrams.append(try await Self.bindDatagrams(host: host, port: bound, on: loop, core: core))
                }
                let tcp = try await ServerBootstrap(group: group)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let pipeline = channel.pipeline.syncOperations
                            try pipeline.addHandler(IdleStateHandler(readTimeout: .seconds(10)))
                            try pipeline.addHandler(ByteToMessageHandler(DNSStreamFramer()))
                            try pipeline.addHandler(DNSStreamHandler(redirector: core))
                        }
                    }
                    .bind(host: host, port: bound).get()
                return (datagrams, tcp)
            } catch  where port == 0 && attempt < 10 {
                for channel in datagrams { try? await channel.close() }
            }
        }
    }

    private static func bindDatagrams(
        host: String,
        port: Int,
        on loop: EventLoop,
        core: RedirectorCore
    ) async throws -> Channel {
        try await DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(NIOBSDSocket.Option(rawValue: CInt(SO_REUSEPORT))), value: 1)
            // Vector reads split the receive buffer between the datagrams: 16 of 4 KiB each,
            // so no query that fits a sane UDP message is cut.
            .channelOption(.datagramVectorReadMessageCount, value: 16)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 16 * 4096))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DNSDatagramHandler(redirector: core))
                }
            }
            .bind(host: host, port: port).get()
    }

    /// Checks the edges every check interval and, when started from a file, reloads it on SIGHUP,
    /// until shutdown.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: self.core.snapshot.configuration.checkInterval)
                        await self.core.checkEdges()
                    }
                }
                if let reload = self.reload {
                    group.addTask {
                        await reload.run(logger: self.core.logger) { path in
                            try self.core.reload(RedirectorConfiguration.load(path: path))
                            self.core.logger.info("redirector: reloaded \(path)")
                        }
                    }
                }
                try? await self.channels[0].closeFuture.get()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.core.watch.close()
            for channel in self.channels { channel.close(promise: nil) }
        }
    }

    /// Stops answering (what `run` does at shutdown), for a redirector used without a ServiceGroup.
    public func close() async {
        self.core.watch.close()
        for channel in self.channels { try? await channel.close() }
    }

    /// Why the policy would answer `client` (and `path`) as it does now.
    public func explain(client: IPAddress?, path: String?) -> [String] {
        self.core.snapshot.policy.explain(client: client, path: path.map { Substring($0) })
    }

    /// Explains without serving: checks each edge once, then applies the policy.
    public static func explain(
        _ configuration: RedirectorConfiguration,
        client: IPAddress?,
        path: String?,
        logger: Logger
    ) async throws -> [String] {
        let core = try RedirectorCore(configuration, logger: logger)
        await core.checkEdges()
        core.watch.close()
        return core.snapshot.policy.explain(client: client, path: path.map { Substring($0) })
    }
}

extension Optional {
    fileprivate func asyncMap<T>(_ transform: (Wrapped) async -> T) async -> T? {
        guard let self else { return nil }
        return await transform(self)
    }
}
