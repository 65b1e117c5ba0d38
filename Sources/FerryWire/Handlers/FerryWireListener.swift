import Logging
import NIOCore
import NIOPosix

/// Binds a FerryWire server's listening socket: every accepted connection gets TLS (when there
/// are `credentials`: then a peer without a certificate from the cluster's authority is refused
/// at the handshake), the frame codec, then the handler `makeHandler` returns for it, given the
/// connection's event loop (it may throw to refuse the connection).
///
/// - Parameter group: the loops that accept and serve connections, spread over all of the
///   process's by default; one loop serves each connection on the loop that accepted it, with no
///   hop between threads, for a server whose connections are short.
public func bindFerryWireServer(
    host: String,
    port: Int,
    maxPayloadLength: Int,
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    credentials: ClusterCredentials? = WireSecurity.credentials,
    logger: Logger,
    makeHandler: @escaping @Sendable (_ eventLoop: any EventLoop) throws -> any ChannelHandler
) async throws -> any Channel {
    if credentials == nil {
        logger.debug("FerryWire on \(host):\(port) takes peers without credentials (none were found)")
    }
    return try await ServerBootstrap(group: group)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .serverChannelOption(.backlog, value: 1024)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                if let credentials { try channel.pipeline.syncOperations.addServerTLS(credentials) }
                try channel.pipeline.syncOperations.addWriteCoalescer()
                try channel.pipeline.syncOperations.addFrameCodec(maxPayloadLength: maxPayloadLength, logger: logger)
                try channel.pipeline.syncOperations.addHandler(try makeHandler(channel.eventLoop))
            }
        }
        .bind(host: host, port: port)
        .get()
}
