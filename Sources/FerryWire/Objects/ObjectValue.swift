import NIOCore

/// A value as object calls carry it: arguments and results. Self-describing — every value says
/// its own type — so a peer with no stub (the `ferry call` command) can read and write any call,
/// and compact: a tag byte, then variable-length integers.
///
/// Encoding, one value:
/// ```
/// 0 null | 1 false | 2 true | 3 int: zigzag varint | 4 double: 8 bytes IEEE 754 big-endian
/// 5 string: varint length, UTF-8 | 6 bytes: varint length, bytes
/// 7 list: varint count, values | 8 record: varint count, (varint length, UTF-8 name, value)...
/// ```
public enum ObjectValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case bytes([UInt8])
    case list([ObjectValue])
    /// Named fields, in order: a call's arguments by name, or a structured result.
    case record([ObjectField])

    /// The type's name as interfaces and error messages spell it.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .int: "integer"
        case .double: "float"
        case .string: "string"
        case .bytes: "bytes"
        case .list: "list"
        case .record: "record"
        }
    }
}

/// One named field of a record.
public struct ObjectField: Hashable, Sendable {
    public var name: String
    public var value: ObjectValue

    public init(_ name: String, _ value: ObjectValue) {
        self.name = name
        self.value = value
    }
}

extension ObjectValue {
    /// Nesting deeper than this is refused, so a hostile value cannot exhaust the reader's stack.
    public static let maxDepth = 32

    /// How many bytes ``encode(into:)`` writes.
    public var encodedSize: Int {
        func varint(_ value: Int) -> Int { max(1, (64 - UInt64(value).leadingZeroBitCount + 6) / 7) }
        switch self {
        case .null, .bool: return 1
        case .int(let value):
            return 1 + max(1, (64 - UInt64(bitPattern: (value << 1) ^ (value >> 63)).leadingZeroBitCount + 6) / 7)
        case .double: return 9
        case .string(let value): return 1 + varint(value.utf8.count) + value.utf8.count
        case .bytes(let value): return 1 + varint(value.count) + value.count
        case .list(let values): return 1 + varint(values.count) + values.reduce(0) { $0 + $1.encodedSize }
        case .record(let fields):
            return 1 + varint(fields.count)
                + fields.reduce(0) { $0 + varint($1.name.utf8.count) + $1.name.utf8.count + $1.value.encodedSize }
        }
    }

    /// Appends the value's bytes.
    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        case .null: buffer.writeInteger(UInt8(0))
        case .bool(let value): buffer.writeInteger(UInt8(value ? 2 : 1))
        case .int(let value):
            buffer.writeInteger(UInt8(3))
            buffer.writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
        case .double(let value):
            buffer.writeInteger(UInt8(4))
            buffer.writeInteger(value.bitPattern)
        case .string(let value):
            buffer.writeInteger(UInt8(5))
            buffer.writeVarint(UInt64(value.utf8.count))
            buffer.writeString(value)
        case .bytes(let value):
            buffer.writeInteger(UInt8(6))
            buffer.writeVarint(UInt64(value.count))
            buffer.writeBytes(value)
        case .list(let values):
            buffer.writeInteger(UInt8(7))
            buffer.writeVarint(UInt64(values.count))
            for value in values { value.encode(into: &buffer) }
        case .record(let fields):
            buffer.writeInteger(UInt8(8))
            buffer.writeVarint(UInt64(fields.count))
            for field in fields {
                buffer.writeVarint(UInt64(field.name.utf8.count))
                buffer.writeString(field.name)
                field.value.encode(into: &buffer)
            }
        }
    }

    /// Reads one value written by ``encode(into:)``.
    ///
    /// - Throws: ``FerryWireError/malformedPayload(kind:reason:)`` for `kind` when the bytes are
    ///   not a value: an unknown tag, a length past the end, bad UTF-8, or nesting past ``maxDepth``.
    public init(from buffer: inout ByteBuffer, kind: MessageKind, depth: Int = 0) throws {
        func malformed(_ reason: String) -> FerryWireError { .malformedPayload(kind: kind, reason: reason) }
        guard depth < Self.maxDepth else { throw malformed("value nested deeper than \(Self.maxDepth) levels") }
        guard let tag = buffer.readInteger(as: UInt8.self) else { throw malformed("value cut short") }
        switch tag {
        case 0: self = .null
        case 1: self = .bool(false)
        case 2: self = .bool(true)
        case 3:
            let zigzag = try buffer.readVarint(kind: kind)
            self = .int(Int64(bitPattern: zigzag >> 1) ^ -Int64(bitPattern: zigzag & 1))
        case 4:
            guard let bits = buffer.readInteger(as: UInt64.self) else { throw malformed("float cut short") }
            self = .double(Double(bitPattern: bits))
        case 5:
            let length = try buffer.readLength(kind: kind)
            guard let text = try? buffer.readUTF8ValidatedString(length: length) else {
                throw malformed("string is not valid UTF-8")
            }
            self = .string(text)
        case 6:
            self = .bytes(buffer.readBytes(length: try buffer.readLength(kind: kind))!)
        case 7:
            // Each element takes at least one byte, so the count is bounded by what is left.
            let count = try buffer.readLength(kind: kind)
            var values: [ObjectValue] = []
            // A small reservation: a hostile count nested many levels deep must not reserve at each.
            values.reserveCapacity(min(count, 64))
            for _ in 0..<count { values.append(try ObjectValue(from: &buffer, kind: kind, depth: depth + 1)) }
            self = .list(values)
        case 8:
            let count = try buffer.readLength(kind: kind)
            var fields: [ObjectField] = []
            fields.reserveCapacity(min(count, 64))
            for _ in 0..<count {
                let length = try buffer.readLength(kind: kind)
                guard let name = try? buffer.readUTF8ValidatedString(length: length) else {
                    throw malformed("field name is not valid UTF-8")
                }
                fields.append(ObjectField(name, try ObjectValue(from: &buffer, kind: kind, depth: depth + 1)))
            }
            self = .record(fields)
        default:
            throw malformed("unknown value tag \(tag)")
        }
    }
}

extension ByteBuffer {
    /// Writes an unsigned LEB128 integer: 1 byte below 128, at most 10.
    @inlinable
    public mutating func writeVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            self.writeInteger(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        self.writeInteger(UInt8(value))
    }

    /// Reads an integer written by ``writeVarint(_:)``.
    public mutating func readVarint(kind: MessageKind) throws -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard let byte = self.readInteger(as: UInt8.self) else {
                throw FerryWireError.malformedPayload(kind: kind, reason: "integer cut short")
            }
            value |= UInt64(byte & 0x7f) << UInt64(shift)
            if byte < 0x80 { return value }
        }
        throw FerryWireError.malformedPayload(kind: kind, reason: "integer longer than 10 bytes")
    }

    /// Reads a varint length or count and refuses one past the bytes left.
    mutating func readLength(kind: MessageKind) throws -> Int {
        let length = try self.readVarint(kind: kind)
        guard length <= UInt64(self.readableBytes) else {
            throw FerryWireError.malformedPayload(
                kind: kind,
                reason: "length \(length) runs past the \(self.readableBytes) bytes left"
            )
        }
        return Int(length)
    }
}

// JSON and other text formats through Codable: what `ferry call` reads and prints. Bytes travel
// as base64 strings there, so they come back as strings.
extension ObjectValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([ObjectValue].self) {
            self = .list(value)
        } else {
            let fields = try decoder.container(keyedBy: FieldName.self)
            self = .record(
                try fields.allKeys.sorted { $0.stringValue < $1.stringValue }.map {
                    ObjectField($0.stringValue, try fields.decode(ObjectValue.self, forKey: $0))
                }
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .record(let fields):
            var container = encoder.container(keyedBy: FieldName.self)
            for field in fields { try container.encode(field.value, forKey: FieldName(field.name)) }
        default:
            var container = encoder.singleValueContainer()
            switch self {
            case .null: try container.encodeNil()
            case .bool(let value): try container.encode(value)
            case .int(let value): try container.encode(value)
            case .double(let value): try container.encode(value)
            case .string(let value): try container.encode(value)
            case .bytes(let value): try container.encode(Base64.encode(value))
            case .list(let values): try container.encode(values)
            case .record: break
            }
        }
    }

    struct FieldName: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { self.stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// Standard base64, for bytes in text.
enum Base64 {
    static func encode(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var bits = 0
            for (offset, byte) in chunk.enumerated() { bits |= Int(byte) << (16 - 8 * offset) }
            for position in 0..<4 {
                out.append(position <= chunk.count ? alphabet[(bits >> (18 - 6 * position)) & 63] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
