import FerryPosix
import FerryWire
import Foundation
import GRDB
import NIOConcurrencyHelpers

/// Where persistent objects keep their state while deactivated: SQLite, through GRDB.
///
/// Every save carries the epoch of the activation that made it, and a save older than the one
/// stored is refused: an activation that lost its lease (and whose object is active elsewhere
/// now) cannot overwrite newer state. Nodes on one host share the store by opening one file.
///
/// Saves are group-committed, as the kv service's writes are: every save waiting when the writer
/// is free goes in one transaction and one fsync, and each returns once it is durable.
public final class ObjectStore: ObjectStorage {
    private struct Waiting: Sendable {
        let id: String
        let type: String
        let state: [UInt8]
        let epoch: UInt64
        let completion: @Sendable (Result<Void, any Error>) -> Void
    }

    private struct WriterState: Sendable {
        var waiting: [Waiting] = []
        var draining = false
    }

    private let pool: DatabasePool
    private let path: String
    private let writer = NIOLockedValueBox(WriterState())
    private let writerQueue = DispatchQueue(label: "ferry.objects.writer")

    public init(path: String) throws {
        self.path = path
        do {
            var migrator = DatabaseMigrator()
            migrator.registerMigration("objects-v1") { db in
                try db.execute(
                    sql: """
                        CREATE TABLE objects (
                            id TEXT PRIMARY KEY NOT NULL,
                            type TEXT NOT NULL,
                            epoch INTEGER NOT NULL,
                            state BLOB NOT NULL
                        )
                        """
                )
            }
            // Each activation of a persistent object takes the next number of its generation: the
            // epoch that fences its saves, ever larger for the object whichever node activates it.
            migrator.registerMigration("generations-v1") { db in
                try db.execute(
                    sql: """
                        CREATE TABLE generations (id TEXT PRIMARY KEY NOT NULL, epoch INTEGER NOT NULL);
                        INSERT INTO generations (id, epoch) SELECT id, epoch FROM objects;
                        """
                )
            }
            var configuration = Configuration()
            configuration.busyMode = .timeout(5)
            // Nodes sharing the file may start together: one makes its tables, the others find them.
            self.pool = try withExclusiveFileLock(path) {
                let pool = try DatabasePool(path: path, configuration: configuration)
                try migrator.migrate(pool)
                return pool
            }
            // GRDB's WAL default syncs the log only at checkpoints; a saved state must survive a
            // power cut once its call is answered, so every commit is synced (as the kv store's).
            try self.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        } catch {
            throw ErrorMessage(
                code: .unavailable,
                message: "cannot open the object store at \(path): \(error); is the directory writable?"
            )
        }
    }

    /// The epoch of a new activation of `id`: one more than any before it.
    public func nextEpoch(_ id: String) async throws -> UInt64 {
        try await self.pool.write { db in
            let epoch = try Int64.fetchOne(
                db,
                sql: """
                    INSERT INTO generations (id, epoch) VALUES (?, 1)
                    ON CONFLICT(id) DO UPDATE SET epoch = epoch + 1
                    RETURNING epoch
                    """,
                arguments: [id]
            )
            return UInt64(bitPattern: epoch ?? 1)
        }
    }

    /// The state `id` last saved, and the epoch that saved it.
    public func load(_ id: String) async throws -> (state: [UInt8], epoch: UInt64)? {
        try await self.pool.read { db in
            try Row.fetchOne(db, sql: "SELECT state, epoch FROM objects WHERE id = ?", arguments: [id]).map { row in
                let state: Data = row["state"]
                let epoch: Int64 = row["epoch"]
                return ([UInt8](state), UInt64(bitPattern: epoch))
            }
        }
    }

    /// Queues a save for the next group commit; `completion` runs on the writer thread once it is
    /// durable, or with the error that kept it from being stored. Saves of one object are stored
    /// in the order they were queued.
    public func enqueueSave(
        _ id: String,
        type: String,
        state: [UInt8],
        epoch: UInt64,
        completion: @escaping @Sendable (Result<Void, any Error>) -> Void
    ) {
        let startDraining = self.writer.withLockedValue { writer in
            writer.waiting.append(Waiting(id: id, type: type, state: state, epoch: epoch, completion: completion))
            defer { writer.draining = true }
            return !writer.draining
        }
        if startDraining { self.writerQueue.async { self.drain() } }
    }

    /// Commits batches until nobody waits.
    private func drain() {
        while true {
            let batch = self.writer.withLockedValue { writer in
                if writer.waiting.isEmpty { writer.draining = false }
                defer { writer.waiting = [] }
                return writer.waiting
            }
            if batch.isEmpty { return }
            do {
                let stored = try self.pool.write { db in
                    try batch.map { save in
                        try db.cachedStatement(
                            sql: """
                                INSERT INTO objects (id, type, epoch, state) VALUES (?, ?, ?, ?)
                                ON CONFLICT(id) DO UPDATE SET type = excluded.type, epoch = excluded.epoch, state = excluded.state
                                WHERE objects.epoch <= excluded.epoch
                                """
                        ).execute(arguments: [save.id, save.type, Int64(bitPattern: save.epoch), Data(save.state)])
                        return db.changesCount > 0
                    }
                }
                for (save, stored) in zip(batch, stored) {
                    guard stored else {
                        save.completion(.failure(Self.stale(save.id, epoch: save.epoch)))
                        continue
                    }
                    save.completion(.success(()))
                }
            } catch {
                let failure = ErrorMessage(
                    code: .unavailable,
                    message: "the object state was not saved: \(error) (store \(self.path))"
                )
                for save in batch { save.completion(.failure(failure)) }
            }
        }
    }

    /// Every stored object: id, type and epoch.
    public func list() async throws -> [(id: String, type: String, epoch: UInt64)] {
        try await self.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, type, epoch FROM objects ORDER BY id").map { row in
                (row["id"], row["type"], UInt64(bitPattern: row["epoch"] as Int64))
            }
        }
    }

    public func close() throws { try self.pool.close() }
}
