import FerryWire
import Foundation
import GRDB

/// Where persistent objects keep their state while deactivated: SQLite, through GRDB.
///
/// Every save carries the epoch of the activation that made it, and a save older than the one
/// stored is refused: an activation that lost its lease (and whose object is active elsewhere
/// now) cannot overwrite newer state. Nodes on one host share the store by opening one file.
public final class ObjectStore: Sendable {
    private let pool: DatabasePool

    public init(path: String) throws {
        do {
            self.pool = try DatabasePool(path: path)
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
            try migrator.migrate(self.pool)
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

    /// Saves `state` as made by the activation of `epoch`.
    ///
    /// - Throws: ``ErrorMessage/Code/staleEpoch`` when a later activation saved already.
    public func save(_ id: String, type: String, state: [UInt8], epoch: UInt64) async throws {
        let saved = try await self.pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO objects (id, type, epoch, state) VALUES (?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET type = excluded.type, epoch = excluded.epoch, state = excluded.state
                    WHERE objects.epoch <= excluded.epoch
                    """,
                arguments: [id, type, Int64(bitPattern: epoch), Data(state)]
            )
            return db.changesCount > 0
        }
        guard saved else {
            throw ErrorMessage(
                code: .staleEpoch,
                message:
                    "the state of '\(id)' from epoch \(epoch) was not saved: a later activation saved already (it lost its lease and is active elsewhere)"
            )
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
