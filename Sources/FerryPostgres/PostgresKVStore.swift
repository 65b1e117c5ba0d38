import FerryKV
import FerryWire
import Logging
import NIOCore
import PostgresNIO

/// The key-value service's keys in PostgreSQL (`ferry serve kv --db postgres://...`): table
/// `ferry_kv`, one row per key with its value and version. A write is acknowledged once its
/// transaction has committed, which with PostgreSQL's defaults (`synchronous_commit = on`,
/// `fsync = on`) means its WAL record is flushed to disk on the server. Writes are
/// group-committed: those waiting while a batch commits go in the next transaction together.
public final class PostgresKVStore: KVStorage {
    public let database: PostgresDatabase
    private let writes: GroupCommit<KVWrite, KVWritten>

    /// Connects to the database at `url` and makes the table if it is missing.
    public static func open(url: String, logger: Logger) async throws -> PostgresKVStore {
        let database = try await PostgresDatabase.open(
            url: url,
            logger: logger,
            store: "key-value store",
            tables: [
                """
                CREATE TABLE IF NOT EXISTS ferry_kv (
                    key TEXT PRIMARY KEY COLLATE "C", value BYTEA NOT NULL, version BIGINT NOT NULL
                )
                """
            ]
        )
        return PostgresKVStore(database)
    }

    private init(_ database: PostgresDatabase) {
        self.database = database
        let name = database.name
        self.writes = GroupCommit(
            database,
            failure: { reason in
                ErrorMessage(
                    code: .unavailable,
                    message:
                        "the write was not acknowledged: \(reason) (store \(name)); ask again once the store answers"
                )
            },
            apply: { write, connection in .success(try await Self.apply(write, connection, database.logger)) }
        )
    }

    public func get(_ key: String) async throws -> KVValue {
        try KVLimits.validate(key: key)
        let rows = try await self.database.client.query(
            "SELECT value, version FROM ferry_kv WHERE key = \(key)",
            logger: self.database.logger
        )
        for try await (value, version) in rows.decode((ByteBuffer, Int64).self) {
            return KVValue(value: Array(value.readableBytesView), version: UInt64(version))
        }
        return KVValue(value: nil, version: 0)
    }

    public func list(prefix: String, limit: Int) async throws -> KVEntries {
        let limit = min(max(limit, 0), KVLimits.maxListEntries)
        // Keys in [prefix, prefix + U+10FFFF) start with prefix, in the "C" collation's byte order.
        let rows = try await self.database.client.query(
            """
            SELECT key, value, version FROM ferry_kv WHERE key >= \(prefix) AND key < \(prefix + "\u{10FFFF}")
            ORDER BY key LIMIT \(limit + 1)
            """,
            logger: self.database.logger
        )
        var entries: [KVEntry] = []
        var bytes = 0
        var truncated = false
        for try await (key, value, version) in rows.decode((String, ByteBuffer, Int64).self) {
            bytes += key.utf8.count + value.readableBytes + 24
            if entries.count == limit || bytes > KVLimits.maxPayloadLength - 4096 {
                truncated = true
                break
            }
            entries.append(KVEntry(key: key, value: Array(value.readableBytesView), version: UInt64(version)))
        }
        return KVEntries(entries: entries, truncated: truncated)
    }

    public func enqueue(_ write: KVWrite, completion: @escaping @Sendable (Result<KVWritten, any Error>) -> Void) {
        do {
            try Self.validate(write)
        } catch {
            return completion(.failure(error))
        }
        self.writes.enqueue(write, completion)
    }

    private static func apply(
        _ write: KVWrite,
        _ connection: PostgresConnection,
        _ logger: Logger
    ) async throws
        -> KVWritten
    {
        let key = write.key
        switch write.operation {
        case .put(let value):
            let version = try await Self.version(
                """
                INSERT INTO ferry_kv (key, value, version) VALUES (\(key), \(ByteBuffer(bytes: value)), 1)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = ferry_kv.version + 1
                RETURNING version
                """,
                connection,
                logger
            )
            return KVWritten(applied: true, version: version ?? 0)
        case .delete:
            let deleted = try await Self.version(
                "DELETE FROM ferry_kv WHERE key = \(key) RETURNING version",
                connection,
                logger
            )
            return KVWritten(applied: deleted != nil, version: 0)
        case .compareAndSet(let expected, let value):
            let stored: UInt64?
            if let expected {
                stored = try await Self.version(
                    """
                    UPDATE ferry_kv SET value = \(ByteBuffer(bytes: value)), version = version + 1
                    WHERE key = \(key) AND value = \(ByteBuffer(bytes: expected)) RETURNING version
                    """,
                    connection,
                    logger
                )
            } else {
                stored = try await Self.version(
                    """
                    INSERT INTO ferry_kv (key, value, version) VALUES (\(key), \(ByteBuffer(bytes: value)), 1)
                    ON CONFLICT (key) DO NOTHING RETURNING version
                    """,
                    connection,
                    logger
                )
            }
            if let stored { return KVWritten(applied: true, version: stored) }
            let current = try await Self.version(
                "SELECT version FROM ferry_kv WHERE key = \(key)",
                connection,
                logger
            )
            return KVWritten(applied: false, version: current ?? 0)
        }
    }

    /// The version the statement returns, nil when it returns no row.
    private static func version(
        _ query: PostgresQuery,
        _ connection: PostgresConnection,
        _ logger: Logger
    )
        async throws -> UInt64?
    {
        for try await version in try await connection.query(query, logger: logger).decode(Int64.self) {
            return UInt64(version)
        }
        return nil
    }

    public func close() throws {
        self.database.close()
    }
}
