import FerryObjects
import FerryWire
import Logging
import NIOCore
import PostgresNIO

/// Persistent objects' state in PostgreSQL (`ferry serve objects --db postgres://...`), so that
/// nodes on different hosts share their objects without sharing a file. Tables `ferry_objects`
/// (state and the epoch that saved it) and `ferry_generations` (the last epoch given to each
/// object). The epoch fence is a conditional update: a save whose epoch is older than the stored
/// one changes no row and is refused. Saves are group-committed and acknowledged once committed.
public final class PostgresObjectStore: ObjectStorage {
    public let database: PostgresDatabase
    private let saves: GroupCommit<Save, Void>

    struct Save: Sendable {
        var id: String
        var type: String
        var state: [UInt8]
        var epoch: UInt64
    }

    /// Connects to the database at `url` and makes the tables if they are missing.
    public static func open(url: String, logger: Logger) async throws -> PostgresObjectStore {
        let database = try await PostgresDatabase.open(
            url: url,
            logger: logger,
            store: "object store",
            tables: [
                """
                CREATE TABLE IF NOT EXISTS ferry_objects (
                    id TEXT PRIMARY KEY, type TEXT NOT NULL, epoch BIGINT NOT NULL, state BYTEA NOT NULL
                )
                """,
                "CREATE TABLE IF NOT EXISTS ferry_generations (id TEXT PRIMARY KEY, epoch BIGINT NOT NULL)",
            ]
        )
        return PostgresObjectStore(database)
    }

    private init(_ database: PostgresDatabase) {
        self.database = database
        let name = database.name
        self.saves = GroupCommit(
            database,
            failure: { reason in
                ErrorMessage(code: .unavailable, message: "the object state was not saved: \(reason) (store \(name))")
            },
            apply: { save, connection in
                let stored = try await connection.query(
                    """
                    INSERT INTO ferry_objects (id, type, epoch, state)
                    VALUES (\(save.id), \(save.type), \(Int64(bitPattern: save.epoch)), \(ByteBuffer(bytes: save.state)))
                    ON CONFLICT (id) DO UPDATE SET type = excluded.type, epoch = excluded.epoch, state = excluded.state
                    WHERE ferry_objects.epoch <= excluded.epoch
                    RETURNING epoch
                    """,
                    logger: database.logger
                ).decode(Int64.self).reduce(0) { count, _ in count + 1 }
                return stored > 0 ? .success(()) : .failure(Self.stale(save.id, epoch: save.epoch))
            }
        )
    }

    public func nextEpoch(_ id: String) async throws -> UInt64 {
        let rows = try await self.database.client.query(
            """
            INSERT INTO ferry_generations (id, epoch) VALUES (\(id), 1)
            ON CONFLICT (id) DO UPDATE SET epoch = ferry_generations.epoch + 1
            RETURNING epoch
            """,
            logger: self.database.logger
        )
        for try await epoch in rows.decode(Int64.self) { return UInt64(bitPattern: epoch) }
        return 1
    }

    public func load(_ id: String) async throws -> (state: [UInt8], epoch: UInt64)? {
        let rows = try await self.database.client.query(
            "SELECT state, epoch FROM ferry_objects WHERE id = \(id)",
            logger: self.database.logger
        )
        for try await (state, epoch) in rows.decode((ByteBuffer, Int64).self) {
            return (Array(state.readableBytesView), UInt64(bitPattern: epoch))
        }
        return nil
    }

    public func enqueueSave(
        _ id: String,
        type: String,
        state: [UInt8],
        epoch: UInt64,
        completion: @escaping @Sendable (Result<Void, any Error>) -> Void
    ) {
        self.saves.enqueue(Save(id: id, type: type, state: state, epoch: epoch), completion)
    }

    public func list() async throws -> [(id: String, type: String, epoch: UInt64)] {
        let rows = try await self.database.client.query(
            "SELECT id, type, epoch FROM ferry_objects ORDER BY id",
            logger: self.database.logger
        )
        var objects: [(id: String, type: String, epoch: UInt64)] = []
        for try await (id, type, epoch) in rows.decode((String, String, Int64).self) {
            objects.append((id, type, UInt64(bitPattern: epoch)))
        }
        return objects
    }

    public func close() throws {
        self.database.close()
    }
}
