// ferry-bench cache-backend: a backend with a cache in front of slow storage, for measuring how
// a switch's policy uses the caches of a cluster (LARD against round robin).
//
//   ferry-bench cache-backend [--port 0] [--capacity 1000] [--miss-ms 2] [--size 1024]
//
// GET /obj/NAME answers `--size` bytes. The backend remembers the last `--capacity` objects it
// served (least recently used leaves first); an object it does not hold takes `--miss-ms` to
// fetch, as from disk or an origin: waited without holding the thread, as a real read would
// be. GET /stats answers `hits=H misses=M`. Prints `listening on HOST:PORT` first.
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

enum CacheBackend {
    final class Cache: @unchecked Sendable {
        // Sendable: touched only on the server's one event loop.
        let capacity: Int
        var lastUse: [Substring: UInt64] = [:]
        var clock: UInt64 = 0
        var hits = 0
        var misses = 0

        init(capacity: Int) { self.capacity = capacity }

        /// Whether `name` was held; it is held (most recently used) afterwards.
        func touch(_ name: Substring) -> Bool {
            self.clock += 1
            if self.lastUse[name] != nil {
                self.lastUse[name] = self.clock
                self.hits += 1
                return true
            }
            self.misses += 1
            if self.lastUse.count >= self.capacity, let oldest = self.lastUse.min(by: { $0.value < $1.value }) {
                self.lastUse[oldest.key] = nil
            }
            self.lastUse[name] = self.clock
            return false
        }
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let cache: Cache
        let missDelay: TimeAmount
        let body: ByteBuffer

        init(cache: Cache, missDelay: TimeAmount, body: ByteBuffer) {
            self.cache = cache
            self.missDelay = missDelay
            self.body = body
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = Self.unwrapInboundIn(data) else { return }
            if head.uri == "/stats" {
                var text = context.channel.allocator.buffer(capacity: 64)
                text.writeString("hits=\(self.cache.hits) misses=\(self.cache.misses)\n")
                self.respond(context: context, text)
                return
            }
            let name = head.uri.split(separator: "?").first ?? ""
            if self.cache.touch(name) {
                self.respond(context: context, self.body)
            } else {
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: self.missDelay) {
                    loopBound.value.0.respond(context: loopBound.value.1, loopBound.value.0.body)
                }
            }
        }

        func respond(context: ChannelHandlerContext, _ body: ByteBuffer) {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: String(body.readableBytes))
            context.write(
                Self.wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: headers))),
                promise: nil
            )
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    static func run(_ arguments: [String]) throws {
        let flags = try parseNumberFlags(
            arguments,
            defaults: ["--port": 0, "--capacity": 1000, "--miss-ms": 2, "--size": 1024]
        )
        let (port, capacity, size) = (flags["--port"]!, flags["--capacity"]!, flags["--size"]!)
        let missMilliseconds = flags["--miss-ms"]!
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let cache = Cache(capacity: capacity)
        let body = ByteBuffer(repeating: UInt8(ascii: "c"), count: size)
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(
                        Handler(cache: cache, missDelay: .milliseconds(Int64(missMilliseconds)), body: body)
                    )
                }
            }
            .bind(host: "127.0.0.1", port: port).wait()
        print("listening on 127.0.0.1:\(channel.localAddress?.port ?? 0)")
        fflush(nil)
        try channel.closeFuture.wait()
    }
}
