import Logging
import NIOCore

/// Sits after the frame decoder and passes frames on; a protocol error on this connection is logged
/// once, with the peer's address, and closes this connection only.
public final class FrameErrorHandler: ChannelInboundHandler {
    public typealias InboundIn = Frame
    public typealias InboundOut = Frame

    private let logger: Logger
    /// Kept from when the connection opened: after a reset the channel no longer knows it.
    private var peer = "unknown peer"

    public init(logger: Logger) {
        self.logger = logger
    }

    public func channelActive(context: ChannelHandlerContext) {
        if let remote = context.remoteAddress { self.peer = "\(remote)" }
        context.fireChannelActive()
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if let remote = context.remoteAddress { self.peer = "\(remote)" }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is FerryWireError || error is ByteToMessageDecoderError {
            self.logger.warning("closing FerryWire connection from \(self.peer): \(error)")
        } else {
            // A reset or a broken pipe: the peer went away, which is not worth a warning.
            self.logger.debug("FerryWire connection from \(self.peer) failed: \(error)")
        }
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
    public func addFrameCodec(
        maxPayloadLength: Int = FrameDecoder.defaultMaxPayloadLength,
        logger: Logger
    ) throws {
        try self.addHandler(ByteToMessageHandler(FrameDecoder(maxPayloadLength: maxPayloadLength)))
        try self.addHandler(MessageToByteHandler(FrameEncoder()))
        try self.addHandler(FrameErrorHandler(logger: logger))
    }
}
