import NIOCore

/// The fixed 20-byte header that starts every FerryWire frame.
///
/// Layout, big-endian:
/// ```
/// 0      4        5     6       8            16              20
/// | magic | version | kind | flags | request id | payload length |
/// ```
public struct FrameHeader: Hashable, Sendable {
    /// `"FRRY"` — lets a peer that dialled the wrong port fail on the first four bytes.
    public static let magic: UInt32 = 0x4652_5259
    /// The protocol version this build speaks.
    public static let currentVersion: UInt8 = 1
    /// The encoded size of a header.
    public static let size = 20
    /// Where the payload length starts, from the header's first byte.
    public static let payloadLengthOffset = 16

    public var version: UInt8
    public var kind: MessageKind
    public var flags: FrameFlags
    /// Chosen by the requester; a response carries the id of the request it answers.
    public var requestID: UInt64
    public var payloadLength: UInt32

    /// Creates a header for the current protocol version.
    public init(kind: MessageKind, flags: FrameFlags = [], requestID: UInt64, payloadLength: UInt32) {
        self.version = Self.currentVersion
        self.kind = kind
        self.flags = flags
        self.requestID = requestID
        self.payloadLength = payloadLength
    }

    /// Writes the header's 20 bytes.
    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(Self.magic)
        buffer.writeInteger(self.version)
        buffer.writeInteger(self.kind.rawValue)
        buffer.writeInteger(self.flags.rawValue)
        buffer.writeInteger(self.requestID)
        buffer.writeInteger(self.payloadLength)
    }

    /// Reads and validates a header without consuming bytes unless a whole valid header is there.
    ///
    /// - Returns: the header, or `nil` when fewer than ``size`` bytes are readable.
    /// - Throws: ``FerryWireError`` when the bytes cannot start a frame this build accepts.
    public static func read(from buffer: inout ByteBuffer, maxPayloadLength: Int) throws -> FrameHeader? {
        guard buffer.readableBytes >= Self.size else { return nil }
        let start = buffer.readerIndex
        let magic = buffer.getInteger(at: start, as: UInt32.self)!
        guard magic == Self.magic else { throw FerryWireError.badMagic(magic) }
        let version = buffer.getInteger(at: start + 4, as: UInt8.self)!
        guard version == Self.currentVersion else { throw FerryWireError.unsupportedVersion(version) }
        let kind = MessageKind(rawValue: buffer.getInteger(at: start + 5, as: UInt8.self)!)
        let flags = buffer.getInteger(at: start + 6, as: UInt16.self)!
        guard flags & ~FrameFlags.all.rawValue == 0 else { throw FerryWireError.unknownFlags(flags) }
        let requestID = buffer.getInteger(at: start + 8, as: UInt64.self)!
        let length = buffer.getInteger(at: start + Self.payloadLengthOffset, as: UInt32.self)!
        guard Int(length) <= maxPayloadLength else {
            throw FerryWireError.frameTooLarge(length: Int(length), limit: maxPayloadLength)
        }
        buffer.moveReaderIndex(forwardBy: Self.size)
        return FrameHeader(
            kind: kind,
            flags: FrameFlags(rawValue: flags),
            requestID: requestID,
            payloadLength: length
        )
    }
}

/// Per-frame flags.
public struct FrameFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The frame answers a request with the same request id.
    public static let response = FrameFlags(rawValue: 1 << 0)
    /// The frame's payload is an ``ErrorMessage``.
    public static let error = FrameFlags(rawValue: 1 << 1)
    /// More frames with the same request id follow (a streamed answer).
    public static let more = FrameFlags(rawValue: 1 << 2)

    /// Every flag this version defines; any other bit makes the frame malformed.
    public static let all: FrameFlags = [.response, .error, .more]
}
