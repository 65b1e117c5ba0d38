import FerryEndpoints
import FerryHTTP
import FerryPosix
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// `ferry edge`: a caching HTTP/1.1 reverse proxy in front of one origin, a CDN's edge server.
///
/// Objects the origin lets a shared cache keep (RFC 9111) are kept in memory under a byte
/// budget, and on disk too with a cache directory; a fresh object is answered from the cache, a
/// stale one revalidated with a conditional request (or served stale while that happens, RFC
/// 5861), concurrent misses for one object make one origin request. Answers carry `Age` and
/// `X-Cache: HIT|MISS|STALE`.
public final class EdgeServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var origin: OriginAddress
        public var host = "127.0.0.1"
        public var port = 0
        /// The name the edge reports under; the redirector's configuration uses the same one.
        public var name = "edge"
        public var region: String?
        public var cacheBytes = 256 << 20
        public var cacheDirectory: String?
        /// How long the origin may stay silent before the client gets a 504 (or a stale copy).
        public var originTimeout: Duration = .seconds(10)
        /// The endpoint daemon to publish the edge's load and hit ratio at, every second.
        public var endpoints: RegistryAddress?
        /// How long a client may keep the edge waiting.
        public var clientTimeouts = ClientTimeouts()
        /// Connections one client address may hold open; 0 for no cap.
        public var maxConnectionsPerSource = 1024

        public init(origin: OriginAddress) {
            self.origin = origin
        }
    }

    public let configuration: Configuration
    /// Where it listens, with the port it was given.
    public let address: ServiceEndpoint
    let core: EdgeCore
    private let channel: Channel
    private let logger: Logger

    /// The path the edge answers itself, with its figures as JSON: the redirector's health check.
    public static let statusPath = "/.ferry/status"

    private init(core: EdgeCore, channel: Channel) {
        self.configuration = core.configuration
        self.core = core
        self.logger = core.logger
        self.channel = channel
        self.address = ServiceEndpoint(
            host: core.configuration.host,
            port: channel.localAddress?.port ?? core.configuration.port
        )
    }

    /// Loads the disk cache (when there is one) and binds.
    public static func bind(_ configuration: Configuration, logger: Logger) async throws -> EdgeServer {
        let cache = try EdgeCache(byteLimit: configuration.cacheBytes, directory: configuration.cacheDirectory)
        if let directory = configuration.cacheDirectory {
            logger.info("edge: \(cache.count) objects (\(cache.bytes) bytes) loaded from \(directory)")
        }
        let core = EdgeCore(configuration: configuration, cache: cache, logger: logger)
        let sources = SourceLimit(maximum: configuration.maxConnectionsPerSource)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                    try pipeline.addClientLimits(configuration.clientTimeouts, sources: sources, logger: logger)
                    try pipeline.addHandler(EdgeConnection(core: core))
                }
            }
            .bind(host: configuration.host, port: configuration.port).get()
        return EdgeServer(core: core, channel: channel)
    }

    /// Stops taking connections (what `run` does at shutdown), for an edge used without a ServiceGroup.
    public func close() async {
        try? await self.channel.close()
    }

    var stats: EdgeStats { self.core.stats }
    var cache: EdgeCache { self.core.cache }

    public func run() async throws {
        let sampler = self.channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            self.stats.sampleLoad()
        }
        defer { sampler.cancel() }
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                if let endpoints = self.configuration.endpoints {
                    group.addTask { await self.publishLoad(at: endpoints) }
                }
                try await self.channel.closeFuture.get()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.channel.close(promise: nil)
        }
    }

    /// Publishes the edge under `cdn-edge` at the registry every second, its load and hit ratio
    /// in the metadata; registering again with the same address replaces the entry.
    private func publishLoad(at registry: RegistryAddress) async {
        var client: (any Registry)?
        var failing = false
        while !Task.isCancelled {
            do {
                if client?.isActive != true {
                    client = try await registry.connect(logger: self.logger)
                }
                _ = try await client!.register(
                    "cdn-edge",
                    endpoints: [self.address],
                    metadata: self.reportedFigures(),
                    ttl: .seconds(3)
                )
                failing = false
            } catch {
                if !failing {
                    self.logger.warning("edge: cannot publish its load at \(registry): \(error)")
                }
                failing = true
                await client?.close()
                client = nil
            }
            try? await Task.sleep(for: .seconds(1))
        }
        await client?.close()
    }

    private func reportedFigures() -> [String: String] {
        var figures = [
            "name": self.configuration.name,
            "load": String(format: "%.1f", self.stats.load),
            "hit_ratio": String(format: "%.3f", self.stats.hitRatio),
            "objects": String(self.cache.count),
        ]
        figures["region"] = self.configuration.region
        return figures
    }

    // MARK: What operators ask

    /// The edge's figures as JSON: what `/.ferry/status` and the control socket's `stats` answer.
    public func statusJSON() -> String { self.core.statusJSON() }

    /// Answers one control request: `stats`, `purge PATH`, `purge-prefix PREFIX`.
    public func control(_ line: String) -> String {
        let words = line.split(separator: " ", maxSplits: 1).map(String.init)
        switch (words.first, words.count) {
        case ("stats", 1):
            return self.statusJSON()
        case ("purge", 2):
            let removed = self.cache.purge(words[1])
            self.logger.info("edge: purged \(words[1]) (\(removed) objects)")
            return "ok: purged \(removed) objects"
        case ("purge-prefix", 2):
            let removed = self.cache.purge(prefix: words[1])
            self.logger.info("edge: purged everything under \(words[1]) (\(removed) objects)")
            return "ok: purged \(removed) objects"
        default:
            return "error: unknown request '\(line)'; send stats, purge PATH or purge-prefix PREFIX"
        }
    }
}
