import NIOCore

/// Turns bytes into ``Frame``s. Anything that is not a well-formed frame — wrong magic, an unknown
/// version or flag, a payload over the limit, a stream that ends inside a frame — is thrown as a
/// ``FerryWireError``, which ``FrameErrorHandler`` turns into one logged line and a closed connection.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame

    /// Payloads above this many bytes are refused as soon as their header arrives.
    public static let defaultMaxPayloadLength = 16 * 1024 * 1024

    public let maxPayloadLength: Int
    private var pending: FrameHeader?

    public init(maxPayloadLength: Int = FrameDecoder.defaultMaxPayloadLength) {
        self.maxPayloadLength = maxPayloadLength
    }

    /// Decodes one frame from `buffer` if it holds one.
    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        if self.pending == nil {
            try Self.refuseTLS(buffer)
            self.pending = try FrameHeader.read(from: &buffer, maxPayloadLength: self.maxPayloadLength)
        }
        guard let header = self.pending,
            let payload = buffer.readSlice(length: Int(header.payloadLength))
        else { return nil }
        self.pending = nil
        return Frame(header: header, payload: payload)
    }

    /// A TLS record (an alert, 0x15, or a handshake, 0x16, of version 3.x) where a frame should
    /// start, which is never the first byte of a frame's magic: said at once, since a TLS alert is
    /// shorter than a frame header and would otherwise read as a frame cut short.
    private static func refuseTLS(_ buffer: ByteBuffer) throws {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let second = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self),
            TLSRecord.begins(first, second)
        else { return }
        throw FerryWireError.speaksTLS
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try self.decode(buffer: &buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        while try self.decode(context: context, buffer: &buffer) == .continue {}
        if let header = self.pending {
            throw FerryWireError.truncatedFrame(
                have: FrameHeader.size + buffer.readableBytes,
                need: FrameHeader.size + Int(header.payloadLength)
            )
        }
        if buffer.readableBytes > 0 {
            throw FerryWireError.truncatedFrame(have: buffer.readableBytes, need: FrameHeader.size)
        }
        return .needMoreData
    }
}

/// Turns ``Frame``s into bytes.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public init() {}

    public func encode(data frame: Frame, out: inout ByteBuffer) throws {
        frame.write(to: &out)
    }
}
