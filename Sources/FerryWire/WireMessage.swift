import NIOCore

/// A message that travels as the payload of one frame.
///
/// Encoding is plain big-endian integers and length-prefixed UTF-8, read back with explicit limits,
/// so a hostile length can never make the reader allocate more than the frame already holds.
public protocol WireMessage: Sendable {
    /// The frame kind that carries this message.
    static var kind: MessageKind { get }
    /// Reads the message from a payload.
    /// - Throws: ``FerryWireError/malformedPayload(kind:reason:)`` when the bytes do not form one.
    init(from payload: inout ByteBuffer) throws
    /// Appends the message's bytes.
    func encode(into payload: inout ByteBuffer)
}

extension ByteBuffer {
    /// Reads a big-endian integer or throws a malformed-payload error for `kind`.
    @inlinable
    public mutating func readWireInteger<T: FixedWidthInteger>(
        _ type: T.Type = T.self,
        for kind: MessageKind,
        field: StaticString
    ) throws -> T {
        guard let value = self.readInteger(as: T.self) else {
            throw FerryWireError.malformedPayload(kind: kind, reason: "truncated at field \(field)")
        }
        return value
    }

    /// Writes a string as a 32-bit byte count and its UTF-8 bytes.
    public mutating func writeWireString(_ string: String) {
        let lengthIndex = self.writerIndex
        self.writeInteger(UInt32(0))
        let written = self.writeString(string)
        self.setInteger(UInt32(written), at: lengthIndex)
    }

    /// Reads a string written by ``writeWireString(_:)``.
    public mutating func readWireString(for kind: MessageKind, field: StaticString) throws -> String {
        let length = try self.readWireInteger(UInt32.self, for: kind, field: field)
        guard Int(length) <= self.readableBytes else {
            throw FerryWireError.malformedPayload(
                kind: kind,
                reason: "field \(field) claims \(length) bytes but only \(self.readableBytes) remain"
            )
        }
        do {
            return try self.readUTF8ValidatedString(length: Int(length))!
        } catch {
            throw FerryWireError.malformedPayload(kind: kind, reason: "field \(field) is not valid UTF-8")
        }
    }
}

extension ByteBuffer {
    /// Writes bytes as a 32-bit byte count and the bytes.
    public mutating func writeWireBytes(_ bytes: some Collection<UInt8>) {
        self.writeInteger(UInt32(bytes.count))
        self.writeBytes(bytes)
    }

    /// Reads bytes written by ``writeWireBytes(_:)``.
    public mutating func readWireBytes(for kind: MessageKind, field: StaticString) throws -> [UInt8] {
        let length = try self.readWireInteger(UInt32.self, for: kind, field: field)
        guard Int(length) <= self.readableBytes else {
            throw FerryWireError.malformedPayload(
                kind: kind,
                reason: "field \(field) claims \(length) bytes but only \(self.readableBytes) remain"
            )
        }
        return self.readBytes(length: Int(length))!
    }

    /// Reads a 16-bit element count and refuses one above `limit`, so a hostile count cannot make
    /// the reader loop or reserve for long.
    public mutating func readWireCount(for kind: MessageKind, field: StaticString, limit: Int) throws -> Int {
        let count = Int(try self.readWireInteger(UInt16.self, for: kind, field: field))
        guard count <= limit else {
            throw FerryWireError.malformedPayload(kind: kind, reason: "\(count) \(field), limit \(limit)")
        }
        return count
    }
}
