// ferry-bench bare-nio: the least a SwiftNIO server holds per connection, for memory.sh to set
// beside the file server's figure (whose event-driven model ran on NIO channels before it had
// epoll loops of its own): a socket channel with one stateless handler, nothing else.
//
//   ferry-bench bare-nio [--port 0] [--size 1024]
//
// Answers every read that ends a request head (`\r\n\r\n`) with a fixed HTTP/1.1 200 of `--size`
// bytes, keep-alive; no parser, no timer, no per-connection state of its own; one event loop per
// core and reads into buffers that start at 512 bytes, as the file server's did. Prints `listening on
// HOST:PORT` first.
import Foundation
import NIOCore
import NIOPosix

enum BareNIOServer {
    final class Answer: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let response: ByteBuffer

        init(response: ByteBuffer) { self.response = response }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let request = Self.unwrapInboundIn(data)
            // One request per read, as hold.py and wrk send them.
            if request.readableBytesView.suffix(4).elementsEqual("\r\n\r\n".utf8) {
                context.writeAndFlush(Self.wrapOutboundOut(self.response), promise: nil)
            }
        }
    }

    static func run(_ arguments: [String]) throws {
        let flags = try parseNumberFlags(arguments, defaults: ["--port": 0, "--size": 1024])
        let (port, size) = (flags["--port"]!, flags["--size"]!)
        var response = ByteBuffer(
            string: "HTTP/1.1 200 OK\r\nContent-Length: \(size)\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        response.writeRepeatingByte(UInt8(ascii: "b"), count: size)
        let handler = Answer(response: response)
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 4096)
            // The file server's read buffers when it ran on NIO (NIO's default starts at 2 KiB).
            .childChannelOption(
                .recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 64 << 10)
            )
            .childChannelInitializer { $0.pipeline.addHandler(handler) }
            .bind(host: "127.0.0.1", port: port).wait()
        print("listening on 127.0.0.1:\(channel.localAddress?.port ?? 0)")
        fflush(nil)
        try channel.closeFuture.wait()
    }
}
