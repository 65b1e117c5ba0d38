import ArgumentParser
import FerryKV
import FerryObjects
import FerryPostgres
import FerryWire
import Logging

/// Where a server keeps its state: `--db FILE` (SQLite, on this host) or
/// `--store postgres://...` (PostgreSQL, which servers on any host can share).
struct StoreOption: ParsableArguments {
    @Option(help: "The SQLite file; created when missing.")
    var db: String?

    @Option(
        help: ArgumentHelp(
            "A PostgreSQL database instead of a file; its tables are made when missing.",
            valueName: "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
        )
    )
    var store: String?

    func validate() throws {
        switch (self.db, self.store) {
        case (nil, nil): throw ValidationError("give --db FILE or --store postgres://USER@HOST[:PORT]/DATABASE")
        case (_?, _?): throw ValidationError("give --db or --store, not both")
        case (nil, let url?):
            guard PostgresDatabase.isURL(url) else {
                throw ValidationError(
                    "--store takes postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require], got '\(url)'"
                )
            }
        default: break
        }
    }

    func kvStore(logger: Logger) async throws -> any KVStorage {
        guard let url = self.store else { return try KVStore(path: self.db!) }
        return try await Self.opening { try await PostgresKVStore.open(url: url, logger: logger) }
    }

    func objectStore(logger: Logger) async throws -> any ObjectStorage {
        guard let url = self.store else { return try ObjectStore(path: self.db!) }
        return try await Self.opening { try await PostgresObjectStore.open(url: url, logger: logger) }
    }

    /// A store that cannot open ends the command with its reason, in one line.
    private static func opening<Store>(_ open: () async throws -> Store) async throws -> Store {
        do {
            return try await open()
        } catch let error as ErrorMessage {
            throw CommandFailure(error.message)
        } catch let error as PostgresURLError {
            throw ValidationError(error.description)
        }
    }
}
