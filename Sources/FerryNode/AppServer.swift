import FerryHTTP
import FerryKV
import FerryPosix
import FerryServer
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The application tier of `ferry up`: a small HTTP service whose state lives in the data tier
/// (the key-value service), so that any of its nodes can answer any request. Behind the switch,
/// under `/app/`:
///
/// - `GET /app/hello`: which node answered, and the client address the switch passed on;
/// - `POST /app/visits`: adds one to the visit counter in the key-value store (compare-and-set,
///   so concurrent nodes never lose a visit) and answers the new count;
/// - `GET /app/visits`: the count;
/// - `GET /app/health`: 200 while the node can reach its data tier.
public final class AppServer: Service, Sendable {
    public let name: String
    public let host: String
    public let port: Int
    private let channel: Channel
    private let kv: KVClient
    private let logger: Logger

    private init(name: String, channel: Channel, kv: KVClient, logger: Logger) {
        self.name = name
        self.channel = channel
        self.host = channel.localAddress?.ipAddress ?? "?"
        self.port = channel.localAddress?.port ?? 0
        self.kv = kv
        self.logger = logger
    }

    /// Binds `host:port` (0 for any) and connects to the key-value service at `kvHost:kvPort`.
    public static func bind(
        name: String,
        host: String,
        port: Int,
        kvHost: String,
        kvPort: Int,
        timeouts: ClientTimeouts = ClientTimeouts(),
        logger: Logger
    ) async throws -> AppServer {
        let kv = try await KVClient.connect(host: kvHost, port: kvPort)
        // No cap per source: every connection comes from the switch in front.
        let noCap = SourceLimit(maximum: 0)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addClientLimits(timeouts, sources: noCap, logger: logger)
                    try channel.pipeline.syncOperations.addHandler(AppHandler(name: name, kv: kv, logger: logger))
                }
            }
            .bind(host: host, port: port).get()
        return AppServer(name: name, channel: channel, kv: kv, logger: logger)
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try? await self.channel.close()
        await self.kv.close()
    }

    /// The visit counter's key in the data tier.
    static let visitsKey = "app/visits"
}

/// Answers one request at a time on a connection; the data tier's answers come back through
/// the connection's event loop.
final class AppHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let name: String
    private let kv: KVClient
    private let logger: Logger
    private var head: HTTPRequestHead?

    init(name: String, kv: KVClient, logger: Logger) {
        self.name = name
        self.kv = kv
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break  // no route takes a body
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.answer(head, context: context)
        }
    }

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let forwardedFor = head.headers["x-forwarded-for"].first ?? "-"
        let name = self.name
        let kv = self.kv
        let work: @Sendable () async throws -> (HTTPResponseStatus, [String: any Sendable])
        switch (head.method, path) {
        case (.GET, "/app/hello"):
            work = { (.ok, ["node": name, "forwardedFor": forwardedFor]) }
        case (.GET, "/app/health"):
            work = {
                _ = try await kv.get(AppServer.visitsKey)
                return (.ok, ["node": name, "status": "ok"])
            }
        case (.GET, "/app/visits"):
            work = { (.ok, ["node": name, "visits": try await Self.visits(kv)]) }
        case (.POST, "/app/visits"):
            work = { (.ok, ["node": name, "visits": try await Self.addVisit(kv), "forwardedFor": forwardedFor]) }
        case (_, "/app/visits"), (_, "/app/hello"), (_, "/app/health"):
            work = { (.methodNotAllowed, ["error": "\(head.method) is not allowed on \(path)"]) }
        default:
            work = { (.notFound, ["error": "no route \(path); try /app/hello or /app/visits"]) }
        }
        let keepAlive = head.isKeepAlive
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let logger = self.logger
        let promise = context.eventLoop.makePromise(of: (HTTPResponseStatus, [String: any Sendable]).self)
        promise.completeWithTask {
            do {
                return try await work()
            } catch {
                logger.warning("app node \(name): the data tier failed: \(error)")
                return (.serviceUnavailable, ["node": name, "error": "the data tier is unavailable: \(error)"])
            }
        }
        promise.futureResult.whenSuccess { status, fields in
            let context = loopBound.value
            let body = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data()
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.count + 1))
            headers.add(name: "Ferry-Node", value: name)
            if !keepAlive { headers.add(name: "Connection", value: "close") }
            context.write(
                Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
                promise: nil
            )
            var buffer = context.channel.allocator.buffer(capacity: body.count + 1)
            buffer.writeBytes(body)
            buffer.writeStaticString("\n")
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { loopBound.value.close(promise: nil) }
            }
        }
    }

    static func visits(_ kv: KVClient) async throws -> Int {
        try await kv.get(AppServer.visitsKey).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
    }

    /// Adds one visit with compare-and-set: two nodes counting at once both land, one retrying.
    static func addVisit(_ kv: KVClient) async throws -> Int {
        while true {
            let current = try await kv.get(AppServer.visitsKey)
            let count = (current.flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0) + 1
            let written = try await kv.compareAndSet(
                AppServer.visitsKey,
                expected: current,
                value: Array(String(count).utf8)
            )
            if written.applied { return count }
        }
    }
}
