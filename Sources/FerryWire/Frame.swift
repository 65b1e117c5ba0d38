import NIOCore

/// One FerryWire frame: a header and its payload.
public struct Frame: Sendable, Equatable {
    public var header: FrameHeader
    public var payload: ByteBuffer

    /// Creates a frame; the header's payload length is taken from `payload`.
    public init(kind: MessageKind, flags: FrameFlags = [], requestID: UInt64, payload: ByteBuffer) {
        self.header = FrameHeader(
            kind: kind,
            flags: flags,
            requestID: requestID,
            payloadLength: UInt32(payload.readableBytes)
        )
        self.payload = payload
    }

    /// A frame as read: the header as it came, with its payload.
    public init(header: FrameHeader, payload: ByteBuffer) {
        self.header = header
        self.payload = payload
    }

    /// Writes the frame's bytes: its header, then its payload.
    public func write(to buffer: inout ByteBuffer) {
        buffer.reserveCapacity(minimumWritableBytes: FrameHeader.size + self.payload.readableBytes)
        self.header.write(to: &buffer)
        buffer.writeImmutableBuffer(self.payload)
    }

    /// Writes the frame that would carry `message` straight into `buffer`: no payload buffer of
    /// its own, and one copy fewer, for an answer made on a server's hot path.
    public static func write<Message: WireMessage>(
        _ message: Message,
        flags: FrameFlags = [],
        requestID: UInt64,
        to buffer: inout ByteBuffer
    ) {
        let start = buffer.writerIndex
        FrameHeader(kind: Message.kind, flags: flags, requestID: requestID, payloadLength: 0).write(to: &buffer)
        message.encode(into: &buffer)
        let length = UInt32(buffer.writerIndex - start - FrameHeader.size)
        buffer.setInteger(length, at: start + FrameHeader.payloadLengthOffset)
    }

    /// Creates a frame carrying `message`.
    public init<Message: WireMessage>(_ message: Message, flags: FrameFlags = [], requestID: UInt64) {
        var payload = ByteBuffer()
        message.encode(into: &payload)
        self.init(kind: Message.kind, flags: flags, requestID: requestID, payload: payload)
    }

    /// Decodes the payload as `Message`.
    ///
    /// - Throws: ``FerryWireError/unexpectedKind(expected:got:)`` when the frame carries another kind
    ///   (an ``ErrorMessage`` answer is thrown as itself), or ``FerryWireError/malformedPayload(kind:reason:)``.
    public func decode<Message: WireMessage>(as type: Message.Type = Message.self) throws -> Message {
        if self.header.kind == .error, Message.kind != .error {
            throw try self.decode(as: ErrorMessage.self)
        }
        guard self.header.kind == Message.kind else {
            throw FerryWireError.unexpectedKind(expected: Message.kind, got: self.header.kind)
        }
        var payload = self.payload
        let message: Message
        do {
            message = try Message(from: &payload)
        } catch let error as FerryWireError {
            throw error
        } catch let error as ErrorMessage {
            throw error
        } catch {
            throw FerryWireError.malformedPayload(kind: Message.kind, reason: "\(error)")
        }
        guard payload.readableBytes == 0 else {
            throw FerryWireError.malformedPayload(
                kind: Message.kind,
                reason: "\(payload.readableBytes) unexpected bytes after the message"
            )
        }
        return message
    }
}

extension Frame {
    /// The error answer to request `requestID`: an ``ErrorMessage`` as itself, a payload that did
    /// not decode as `malformed`, anything else as `unavailable` (the peer's own failure).
    public init(answering error: any Error, requestID: UInt64) {
        let message: ErrorMessage
        switch error {
        case let error as ErrorMessage: message = error
        case let error as FerryWireError: message = ErrorMessage(code: .malformed, message: "\(error)")
        default: message = ErrorMessage(code: .unavailable, message: "\(error)")
        }
        self.init(message, flags: [.response, .error], requestID: requestID)
    }
}
