import FerryPosix
import Logging
import NIOCore
import NIOSSL

/// Sits after the frame decoder and passes frames on; a protocol error on this connection is logged
/// once, with the peer's address, and closes this connection only.
public final class FrameErrorHandler: ChannelInboundHandler {
    public typealias InboundIn = Frame
    public typealias InboundOut = Frame

    private let logger: Logger
    /// On a server's connection: a failed handshake is a peer refused, logged once. On a
    /// client's, the error goes on to the client, which fails its calls with it.
    private let acceptsPeers: Bool
    /// Kept from when the connection opened: after a reset the channel no longer knows it.
    private var peer = "unknown peer"

    public init(logger: Logger, acceptsPeers: Bool = true) {
        self.logger = logger
        self.acceptsPeers = acceptsPeers
    }

    public func channelActive(context: ChannelHandlerContext) {
        if let remote = context.remoteAddress { self.peer = Self.text(remote) }
        context.fireChannelActive()
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if let remote = context.remoteAddress { self.peer = Self.text(remote) }
    }

    /// `HOST:PORT`, not NIO's `[IPv4]HOST/HOST:PORT`.
    private static func text(_ address: SocketAddress) -> String {
        guard let host = address.ipAddress, let port = address.port else { return "\(address)" }
        return hostAndPort(host, port)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !self.acceptsPeers {
            // The client fails its calls with the error, and its caller reports it.
            self.logger.debug("FerryWire connection to \(self.peer) failed: \(error)")
        } else if error is FerryWireError || error is ByteToMessageDecoderError {
            self.logger.warning("closing FerryWire connection from \(self.peer): \(error)")
        } else if error is NIOSSLError {
            self.logger.warning("\(HandshakeFailure.refusal(of: self.peer, error))")
        } else {
            // A reset or a broken pipe: the peer went away, which is not worth a warning.
            self.logger.debug("FerryWire connection from \(self.peer) failed: \(error)")
        }
        if !self.acceptsPeers { context.fireErrorCaught(error) }
        context.close(promise: nil)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// Adds the FerryWire frame decoder, encoder and error handler.
    ///
    /// - Parameters:
    ///   - maxPayloadLength: frames whose payload is longer are refused and close the connection.
    ///   - logger: where a refused frame is reported.
    ///   - acceptsPeers: a server's connection (errors end there) or a client's (they go on).
    public func addFrameCodec(
        maxPayloadLength: Int = FrameDecoder.defaultMaxPayloadLength,
        logger: Logger,
        acceptsPeers: Bool = true
    ) throws {
        try self.addHandler(ByteToMessageHandler(FrameDecoder(maxPayloadLength: maxPayloadLength)))
        try self.addHandler(MessageToByteHandler(FrameEncoder()))
        try self.addHandler(FrameErrorHandler(logger: logger, acceptsPeers: acceptsPeers))
    }
}
