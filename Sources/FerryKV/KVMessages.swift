import FerryWire
import NIOCore

/// What the key-value service accepts.
public enum KVLimits {
    public static let maxKeyBytes = 1024
    public static let maxValueBytes = 1024 * 1024
    public static let maxListEntries = 10_000
    /// The frame limit: one value at its largest, with room for its key and the header.
    public static let maxPayloadLength = 2 * 1024 * 1024

    /// Refuses an empty or oversized key, or an oversized value, with a sentence that names it.
    public static func validate(key: String, value: [UInt8]? = nil) throws {
        guard !key.isEmpty else { throw ErrorMessage(code: .malformed, message: "the key is empty") }
        guard key.utf8.count <= Self.maxKeyBytes else {
            throw ErrorMessage(
                code: .tooLarge,
                message: "key '\(key.prefix(40))...' is \(key.utf8.count) bytes; keys take at most \(Self.maxKeyBytes)"
            )
        }
        if let value, value.count > Self.maxValueBytes {
            throw ErrorMessage(
                code: .tooLarge,
                message:
                    "the value of '\(key.prefix(40))' is \(value.count) bytes; values take at most \(Self.maxValueBytes)"
            )
        }
    }
}

/// Reads one key; the answer is a ``KVValue``.
public struct KVGet: WireMessage, Hashable {
    public static let kind = MessageKind.kvGet
    public var key: String

    public init(key: String) { self.key = key }
    public init(from payload: inout ByteBuffer) throws {
        self.key = try payload.readWireString(for: Self.kind, field: "key")
    }
    public func encode(into payload: inout ByteBuffer) { payload.writeWireString(self.key) }
}

/// A key's value and version, or `nil` when the key does not exist.
public struct KVValue: WireMessage, Hashable {
    public static let kind = MessageKind.kvValue
    public var value: [UInt8]?
    /// Bumped by every write to the key; 0 when it does not exist.
    public var version: UInt64

    public init(value: [UInt8]?, version: UInt64) {
        self.value = value
        self.version = version
    }

    public init(from payload: inout ByteBuffer) throws {
        let present = try payload.readWireInteger(UInt8.self, for: Self.kind, field: "present")
        self.value = present == 1 ? try payload.readWireBytes(for: Self.kind, field: "value") : nil
        self.version = try payload.readWireInteger(for: Self.kind, field: "version")
    }

    public func encode(into payload: inout ByteBuffer) {
        if let value {
            payload.writeInteger(UInt8(1))
            payload.writeWireBytes(value)
        } else {
            payload.writeInteger(UInt8(0))
        }
        payload.writeInteger(self.version)
    }
}

/// One write: put, delete, or compare-and-set. The answer, ``KVWritten``, is sent only once the
/// write is durable on disk.
public struct KVWrite: WireMessage, Hashable {
    public static let kind = MessageKind.kvWrite

    public enum Operation: Hashable, Sendable {
        case put(value: [UInt8])
        case delete
        /// Sets `value` only if the key holds `expected` now (`nil`: only if it does not exist).
        case compareAndSet(expected: [UInt8]?, value: [UInt8])
    }

    public var key: String
    public var operation: Operation

    public init(key: String, operation: Operation) {
        self.key = key
        self.operation = operation
    }

    public init(from payload: inout ByteBuffer) throws {
        self.key = try payload.readWireString(for: Self.kind, field: "key")
        switch try payload.readWireInteger(UInt8.self, for: Self.kind, field: "operation") {
        case 1: self.operation = .put(value: try payload.readWireBytes(for: Self.kind, field: "value"))
        case 2: self.operation = .delete
        case 3:
            let hasExpected = try payload.readWireInteger(UInt8.self, for: Self.kind, field: "hasExpected") == 1
            let expected = hasExpected ? try payload.readWireBytes(for: Self.kind, field: "expected") : nil
            self.operation = .compareAndSet(
                expected: expected,
                value: try payload.readWireBytes(for: Self.kind, field: "value")
            )
        case let other:
            throw FerryWireError.malformedPayload(kind: Self.kind, reason: "unknown operation \(other)")
        }
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeWireString(self.key)
        switch self.operation {
        case .put(let value):
            payload.writeInteger(UInt8(1))
            payload.writeWireBytes(value)
        case .delete:
            payload.writeInteger(UInt8(2))
        case .compareAndSet(let expected, let value):
            payload.writeInteger(UInt8(3))
            if let expected {
                payload.writeInteger(UInt8(1))
                payload.writeWireBytes(expected)
            } else {
                payload.writeInteger(UInt8(0))
            }
            payload.writeWireBytes(value)
        }
    }
}

/// The outcome of a ``KVWrite``, sent once it is durable.
public struct KVWritten: WireMessage, Hashable {
    public static let kind = MessageKind.kvWritten
    /// False when a compare-and-set found another value, or a delete found no key.
    public var applied: Bool
    /// The key's version after the write (0 once deleted).
    public var version: UInt64

    public init(applied: Bool, version: UInt64) {
        self.applied = applied
        self.version = version
    }

    public init(from payload: inout ByteBuffer) throws {
        self.applied = try payload.readWireInteger(UInt8.self, for: Self.kind, field: "applied") == 1
        self.version = try payload.readWireInteger(for: Self.kind, field: "version")
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeInteger(UInt8(self.applied ? 1 : 0))
        payload.writeInteger(self.version)
    }
}

/// Lists keys that start with `prefix`, in key order, at most `limit` of them.
public struct KVList: WireMessage, Hashable {
    public static let kind = MessageKind.kvList
    public var prefix: String
    public var limit: UInt32

    public init(prefix: String, limit: UInt32 = 1000) {
        self.prefix = prefix
        self.limit = limit
    }

    public init(from payload: inout ByteBuffer) throws {
        self.prefix = try payload.readWireString(for: Self.kind, field: "prefix")
        self.limit = try payload.readWireInteger(for: Self.kind, field: "limit")
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeWireString(self.prefix)
        payload.writeInteger(self.limit)
    }
}

/// Keys and values in key order; `truncated` when more matched than the limit.
public struct KVEntries: WireMessage, Hashable {
    public static let kind = MessageKind.kvEntries
    public var entries: [KVEntry]
    public var truncated: Bool

    public init(entries: [KVEntry], truncated: Bool) {
        self.entries = entries
        self.truncated = truncated
    }

    public init(from payload: inout ByteBuffer) throws {
        let count = Int(try payload.readWireInteger(UInt32.self, for: Self.kind, field: "count"))
        guard count <= KVLimits.maxListEntries else {
            throw FerryWireError.malformedPayload(
                kind: Self.kind,
                reason: "\(count) entries, limit \(KVLimits.maxListEntries)"
            )
        }
        self.entries = try (0..<count).map { _ in
            KVEntry(
                key: try payload.readWireString(for: Self.kind, field: "key"),
                value: try payload.readWireBytes(for: Self.kind, field: "value"),
                version: try payload.readWireInteger(for: Self.kind, field: "version")
            )
        }
        self.truncated = try payload.readWireInteger(UInt8.self, for: Self.kind, field: "truncated") == 1
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeInteger(UInt32(self.entries.count))
        for entry in self.entries {
            payload.writeWireString(entry.key)
            payload.writeWireBytes(entry.value)
            payload.writeInteger(entry.version)
        }
        payload.writeInteger(UInt8(self.truncated ? 1 : 0))
    }
}

/// One key, its value and version.
public struct KVEntry: Hashable, Sendable {
    public var key: String
    public var value: [UInt8]
    public var version: UInt64

    public init(key: String, value: [UInt8], version: UInt64) {
        self.key = key
        self.value = value
        self.version = version
    }
}
