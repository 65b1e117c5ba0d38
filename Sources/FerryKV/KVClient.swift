import FerryWire

/// A connection to a key-value service. Concurrent calls share it.
public struct KVClient: Sendable {
    let wire: WireClient

    public static func connect(host: String, port: Int) async throws -> KVClient {
        KVClient(
            wire: try await WireClient.connect(host: host, port: port, maxPayloadLength: KVLimits.maxPayloadLength)
        )
    }

    /// The value of `key`, or `nil` when it does not exist.
    public func get(_ key: String) async throws -> [UInt8]? {
        try await self.wire.call(KVGet(key: key)).decode(as: KVValue.self).value
    }

    /// Stores `value` under `key`; returns once the server reports it durable.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8]) async throws -> KVWritten {
        try await self.write(KVWrite(key: key, operation: .put(value: value)))
    }

    /// Deletes `key`; `applied` is false when it did not exist.
    @discardableResult
    public func delete(_ key: String) async throws -> KVWritten {
        try await self.write(KVWrite(key: key, operation: .delete))
    }

    /// Sets `value` only if `key` holds `expected` (`nil`: only if absent).
    public func compareAndSet(_ key: String, expected: [UInt8]?, value: [UInt8]) async throws -> KVWritten {
        try await self.write(KVWrite(key: key, operation: .compareAndSet(expected: expected, value: value)))
    }

    public func write(_ write: KVWrite) async throws -> KVWritten {
        try await self.wire.call(write).decode(as: KVWritten.self)
    }

    public func list(prefix: String, limit: Int = 1000) async throws -> KVEntries {
        try await self.wire.call(KVList(prefix: prefix, limit: UInt32(clamping: limit))).decode(as: KVEntries.self)
    }

    public func close() async { await self.wire.close() }
}
