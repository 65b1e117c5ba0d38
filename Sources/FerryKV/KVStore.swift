import Dispatch
import FerryWire
import Foundation
import GRDB
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Permanent state: keys and values in SQLite (through GRDB, WAL mode, `synchronous = FULL`),
/// behind a write-ahead log of Ferry's own (``KVLog``).
///
/// A write is reported done only once it is durable — its record synced in the log — so a write
/// that was acknowledged survives kill -9 and a power cut, and one that was not is either wholly
/// there or wholly absent. The log's records go into the SQLite file behind the acknowledgements,
/// many at a time, on a thread of their own; a store that opens replays what the file lacks.
///
/// Writes are group-committed: one writer thread takes every write waiting when it is free,
/// works out what each does from the keys in memory (``KVMirror``), and appends them as one
/// record with one `fdatasync`. Gets are answered from memory, lists from the SQLite file once
/// every logged write is in it. Past the mirror's limit the log is emptied into the file and
/// writes commit to SQLite directly. Since the mirror must see every write, one store owns its
/// file: a second one, in this process or another, is refused while the first is open.
public final class KVStore: KVStorage {
    private struct WriterState: Sendable {
        var waiting: [KVQueuedWrite] = []
        var draining = false
    }

    public let path: String
    private let pool: DatabasePool
    private let writer = NIOLockedValueBox(WriterState())
    private let writerQueue = DispatchQueue(label: "ferry.kv.writer")
    private let mirror: KVMirror
    /// While the mirror holds every key: touched only on the writer queue (and at open and close).
    private nonisolated(unsafe) var log: KVLog?
    /// Set when the log could not be written, synced or emptied: what reached it is unknown until
    /// a store opens it again and replays it, so no further write is taken (PostgreSQL stops at a
    /// failed fsync for the same reason). Writer queue only.
    private nonisolated(unsafe) var broken: ErrorMessage?
    /// Logged and acknowledged, not yet in the SQLite file, in log order.
    private struct Pending {
        var effects: [KVEffect] = []
        /// An apply is due.
        var scheduled = false
    }

    private let pending = NIOLockedValueBox(Pending())
    /// How long logged writes wait to go into the file together: one SQLite commit (and fsync)
    /// a second, not one per write, so that the log's fsync is the only one a write waits behind.
    /// A second's writes touch each page of the table once where a tenth's each touched most of
    /// them: ten times fewer pages written for the same keys (p99 at 16 clients 1.8-3.4 ms
    /// against 3.1-4.7 at a tenth, `Benchmarks/kv.sh`).
    static let applyDelay = DispatchTimeInterval.seconds(1)
    /// Moves ``pending`` into the SQLite file, one batch at a time, in order.
    private let applierQueue = DispatchQueue(label: "ferry.kv.applier")
    /// Holds the file's flock, which makes this store its only writer.
    private let owner: Int32

    /// Keys and values kept in memory at most, in bytes (with 64 bytes per entry).
    public static let mirrorLimit = 256 << 20

    /// The log's size, etcd's WAL segment's: about 500,000 puts of 100-byte values between two
    /// emptyings, half a minute of puts at full speed. A full log is emptied into the file by the
    /// thread that filled it, which waits for the second's worth not yet applied: rare enough
    /// not to set the tail of a put's latency.
    public static let logCapacity = 64 << 20

    /// Opens (or creates) the store at `path`, its log at `path-log`. Past `mirrorLimit` bytes of
    /// keys and values, gets read the file and writes commit to it without the log.
    public init(path: String, logCapacity: Int = KVStore.logCapacity, mirrorLimit: Int = KVStore.mirrorLimit) throws {
        // Taken before SQLite opens the file, so that a second store is refused with the reason
        // rather than racing the first to make its table. SQLite's own locks are fcntl locks,
        // which flock never meets.
        let owner = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard owner >= 0, flock(owner, LOCK_EX | LOCK_NB) == 0 else {
            let error: KVStoreError =
                errno == EWOULDBLOCK
                ? .alreadyOpen(path: path) : .cannotOpen(path: path, reason: String(cString: strerror(errno)))
            if owner >= 0 { Glibc.close(owner) }
            throw error
        }
        self.owner = owner
        self.path = path
        self.mirror = KVMirror(limit: mirrorLimit)
        var configuration = Configuration()
        configuration.label = "ferry.kv"
        // Another process (or a store still closing) may hold the lock for a moment.
        configuration.busyMode = .timeout(5)
        do {
            self.pool = try DatabasePool(path: path, configuration: configuration)
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1") { db in
                try db.execute(
                    sql: """
                        CREATE TABLE kv (
                            key TEXT PRIMARY KEY NOT NULL,
                            value BLOB NOT NULL,
                            version INTEGER NOT NULL
                        ) WITHOUT ROWID
                        """
                )
            }
            try migrator.migrate(self.pool)
            // GRDB turns WAL mode on with synchronous = NORMAL, which syncs the log only at
            // checkpoints: a commit could be lost in a power cut. FULL syncs it at every commit.
            // Only the writer connection commits, so that is where it must hold.
            try self.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            // What a store killed before this one acknowledged but had not yet put in the file.
            let log = try KVLog(path: path + "-log", capacity: logCapacity)
            let recovered = try log.recover()
            if !recovered.isEmpty { try self.pool.write { db in try Self.apply(recovered, db) } }
            try log.reset()
            self.log = log
        } catch {
            Glibc.close(owner)
            throw KVStoreError.cannotOpen(path: path, reason: "\(error)")
        }
        try self.pool.read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT key, value, version FROM kv")
            while let row = try rows.next() {
                let value: Data = row[1]
                let version: Int64 = row[2]
                guard self.mirror.load(row[0], KVValue(value: [UInt8](value), version: UInt64(version))) else { break }
            }
        }
        // The writer reads current versions from the mirror; without it, from the file.
        if !self.mirror.isOn { self.log = nil }
    }

    deinit { Glibc.close(self.owner) }

    /// SQLite's `synchronous` setting on the connection that commits: 2 (FULL) means every commit
    /// is fsynced before it is acknowledged.
    public var synchronousSetting: Int {
        get throws {
            try self.pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
        }
    }

    /// Puts every logged write in the file and closes it; later calls fail with an error instead
    /// of touching the file.
    public func close() throws {
        try self.writerQueue.sync {
            try self.settle()
            try self.log?.reset()
            self.log = nil
        }
        try self.pool.close()
        flock(self.owner, LOCK_UN)
    }

    /// The value of `key`, as of the last committed write.
    public func get(_ key: String) async throws -> KVValue {
        try KVLimits.validate(key: key)
        if let value = self.mirror.get(key) { return value }
        return try await self.pool.read { db in try Self.get(key, db) }
    }

    /// The value of `key`, on the calling thread: from memory, or (the mirror off) a point read
    /// of a WAL snapshot that does not wait for writers, cheaper inline on an event loop than two
    /// thread hops.
    public func getNow(_ key: String) throws -> KVValue {
        try KVLimits.validate(key: key)
        if let value = self.mirror.get(key) { return value }
        // One SELECT is atomic on its own: no surrounding transaction needed.
        return try self.pool.unsafeRead { db in try Self.get(key, db) }
    }

    private static func get(_ key: String, _ db: Database) throws -> KVValue {
        let statement = try db.cachedStatement(sql: "SELECT value, version FROM kv WHERE key = ?")
        guard let row = try Row.fetchOne(statement, arguments: [key]) else {
            return KVValue(value: nil, version: 0)
        }
        let value: Data = row[0]
        let version: Int64 = row[1]
        return KVValue(value: [UInt8](value), version: UInt64(version))
    }

    /// How many keys the store holds.
    public func count() throws -> Int {
        try self.settle()
        return try self.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM kv") ?? 0 }
    }

    /// Keys starting with `prefix`, in key order, at most `limit`, and no more than fits in one frame.
    public func list(prefix: String, limit: Int) async throws -> KVEntries {
        try self.settle()
        return try await self.pool.read { db in try Self.list(prefix: prefix, limit: limit, db) }
    }

    /// ``list(prefix:limit:)`` on the calling thread.
    public func listNow(prefix: String, limit: Int) throws -> KVEntries {
        try self.settle()
        return try self.pool.read { db in try Self.list(prefix: prefix, limit: limit, db) }
    }

    private static func list(prefix: String, limit: Int, _ db: Database) throws -> KVEntries {
        let limit = min(max(limit, 0), KVLimits.maxListEntries)
        // Keys in [prefix, prefix + U+10FFFF) start with prefix; the range keeps the primary key's order.
        let rows = try Row.fetchCursor(
            db,
            sql: "SELECT key, value, version FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
            arguments: [prefix, prefix + "\u{10FFFF}", limit + 1]
        )
        var entries: [KVEntry] = []
        var bytes = 0
        var truncated = false
        while let row = try rows.next() {
            let key: String = row["key"]
            let value: Data = row["value"]
            bytes += key.utf8.count + value.count + 24
            if entries.count == limit || bytes > KVLimits.maxPayloadLength - 4096 {
                truncated = true
                break
            }
            entries.append(KVEntry(key: key, value: [UInt8](value), version: row["version"]))
        }
        return KVEntries(entries: entries, truncated: truncated)
    }

    /// Queues `write` for the next group commit; `completion` runs on the writer thread once the
    /// write is durable, or with the error that kept it from being stored.
    public func enqueue(_ write: KVWrite, completion: @escaping @Sendable (Result<KVWritten, any Error>) -> Void) {
        self.enqueue([KVQueuedWrite(write, completion: completion)])
    }

    /// Queues writes read together: the writer takes them all into its next group commit.
    public func enqueue(_ writes: [KVQueuedWrite]) {
        self.enqueue(writes, committingHere: false)
    }

    /// Queues writes read together; with `committingHere`, when no commit is under way the
    /// calling thread makes it (and any that queue meanwhile) before it returns, as Redis's loop
    /// syncs its log itself: no hand-over to a writer thread and back. For a thread that serves
    /// only this store (``KVLoop``), never a shared event loop.
    func enqueue(_ writes: [KVQueuedWrite], committingHere: Bool) {
        let valid = writes.filter { queued in
            do {
                try Self.validate(queued.write)
                return true
            } catch {
                queued.completion(.failure(error))
                return false
            }
        }
        guard !valid.isEmpty else { return }
        let startDraining = self.writer.withLockedValue { state in
            state.waiting += valid
            defer { state.draining = true }
            return !state.draining
        }
        guard startDraining else { return }
        // A serial queue's `sync` runs the block on the calling thread when the queue is idle.
        if committingHere {
            self.writerQueue.sync { self.drain(batches: 1) }
        } else {
            self.writerQueue.async { self.drain() }
        }
    }

    /// Commits batches until nobody waits, or `limit` of them: a loop commits one, and what other
    /// threads queued meanwhile goes on on the writer's own thread, so that a steady stream of
    /// other loops' writes never keeps the loop from its sockets.
    private func drain(batches limit: Int = .max) {
        var committed = 0
        while true {
            let (batch, handOff) = self.writer.withLockedValue { state -> ([KVQueuedWrite], Bool) in
                if state.waiting.isEmpty {
                    state.draining = false
                    return ([], false)
                }
                // Still draining: the writer's thread takes over.
                if committed == limit { return ([], true) }
                defer { state.waiting = [] }
                return (state.waiting, false)
            }
            if handOff { self.writerQueue.async { self.drain() } }
            if batch.isEmpty { return }
            committed += 1
            if let broken = self.broken {
                for waiting in batch { waiting.completion(.failure(broken)) }
                continue
            }
            if let log = self.log, self.logged(batch, log) { continue }
            self.commitDirectly(batch)
        }
    }

    /// Commits `batch` through the log: false, with nothing done, when the mirror could pass its
    /// limit with it (the log is then emptied into the file and given up).
    private func logged(_ batch: [KVQueuedWrite], _ log: KVLog) -> Bool {
        var changed: [String: KVValue] = [:]
        var effects: [KVEffect] = []
        var results: [KVWritten] = []
        var added = 0
        for waiting in batch {
            let write = waiting.write
            guard let current = changed[write.key] ?? self.mirror.get(write.key) else {
                return self.giveUpLog(failing: batch)
            }
            let (written, effect) = Self.effect(of: write, on: current)
            results.append(written)
            guard let effect else { continue }
            effects.append(effect)
            if case .set(let key, let value, let version) = effect {
                changed[key] = KVValue(value: value, version: version)
                added += KVMirror.size(key, value)
            } else {
                changed[write.key] = KVValue(value: nil, version: 0)
            }
        }
        if !self.mirror.hasRoom(for: added) { return self.giveUpLog(failing: batch) }
        var schedule = false
        do {
            for group in Self.groups(effects, fitting: log.capacity) {
                var record = log.record(group)
                if !log.fits(record) {
                    // Full: everything it holds goes into the file, then it starts again.
                    try self.settle()
                    try log.reset()
                    record = log.record(group)
                }
                try log.append(record)
                // Pending before the next group: emptying the log for it must take this one along.
                // Before any acknowledgement: a list after one must see its write.
                schedule =
                    self.pending.withLockedValue { pending in
                        pending.effects += group
                        defer { pending.scheduled = true }
                        return !pending.scheduled
                    } || schedule
            }
        } catch {
            self.broken = self.notStored(error, logBroken: true)
            for waiting in batch { waiting.completion(.failure(self.broken!)) }
            return true
        }
        self.mirror.apply(Array(zip(batch.map(\.write), results)))
        for (waiting, result) in zip(batch, results) { waiting.completion(.success(result)) }
        if schedule { self.applierQueue.asyncAfter(deadline: .now() + Self.applyDelay) { try? self.applyPending() } }
        return true
    }

    /// `effects` in groups that each fit in `capacity` bytes as one record.
    private static func groups(_ effects: [KVEffect], fitting capacity: Int) -> [[KVEffect]] {
        var groups: [[KVEffect]] = []
        var group: [KVEffect] = []
        var size = KVLog.headerSize + 4
        for effect in effects {
            let added = KVLog.encodedSize(effect)
            if !group.isEmpty && size + added > capacity {
                groups.append(group)
                group = []
                size = KVLog.headerSize + 4
            }
            group.append(effect)
            size += added
        }
        if !group.isEmpty { groups.append(group) }
        return groups
    }

    /// The mirror would pass its limit: the log's records go into the file, the log is emptied and
    /// no longer used, and writes commit to the file from here on (returns false: `batch` is
    /// still to commit). If the file or the log fails meanwhile, the store is broken (returns
    /// true: `batch` has failed): writes committed to a file that lacks logged ones would be wrong.
    private func giveUpLog(failing batch: [KVQueuedWrite]) -> Bool {
        do {
            try self.settle()
            try self.log?.reset()
        } catch {
            self.broken = self.notStored(error, logBroken: true)
            for waiting in batch { waiting.completion(.failure(self.broken!)) }
            return true
        }
        self.log = nil
        return false
    }

    /// What `write` does to a key that holds `current`: its outcome, and its effect if it changes
    /// the key.
    private static func effect(of write: KVWrite, on current: KVValue) -> (KVWritten, KVEffect?) {
        switch write.operation {
        case .put(let value):
            let version = current.version + 1
            return (KVWritten(applied: true, version: version), .set(key: write.key, value: value, version: version))
        case .delete:
            guard current.value != nil else { return (KVWritten(applied: false, version: 0), nil) }
            return (KVWritten(applied: true, version: 0), .delete(key: write.key))
        case .compareAndSet(let expected, let value):
            guard current.value == expected else { return (KVWritten(applied: false, version: current.version), nil) }
            let version = current.version + 1
            return (KVWritten(applied: true, version: version), .set(key: write.key, value: value, version: version))
        }
    }

    /// Puts every logged write into the file, durably, before this returns.
    private func settle() throws {
        try self.applierQueue.sync { try self.applyPending() }
    }

    /// Commits what is pending to the file in one transaction; on failure it stays pending.
    private func applyPending() throws {
        let effects = self.pending.withLockedValue { pending in
            defer { pending = Pending() }
            return pending.effects
        }
        guard !effects.isEmpty else { return }
        do {
            try self.pool.write { db in try Self.apply(effects, db) }
        } catch {
            // Kept for the next try: a settle before the log's emptying, or the next write's.
            self.pending.withLockedValue { $0.effects = effects + $0.effects }
            throw error
        }
    }

    /// Applies logged effects to the file, the last of each key only.
    private static func apply(_ effects: [KVEffect], _ db: Database) throws {
        var last: [String: KVEffect] = [:]
        for effect in effects { last[effect.key] = effect }
        for effect in last.values { try Self.apply(effect, db) }
    }

    /// Commits `batch` to the file in one transaction (the mirror off, or about to be).
    private func commitDirectly(_ batch: [KVQueuedWrite]) {
        do {
            let results = try self.pool.write { db in
                try batch.map { try Self.apply($0.write, db) }
            }
            // Before any acknowledgement: a get after one must see its write.
            self.mirror.apply(Array(zip(batch.map(\.write), results)))
            for (waiting, result) in zip(batch, results) { waiting.completion(.success(result)) }
        } catch {
            self.mirror.turnOff()
            for waiting in batch { waiting.completion(.failure(self.notStored(error))) }
        }
    }

    private func notStored(_ error: any Error, logBroken: Bool = false) -> ErrorMessage {
        guard logBroken else {
            return ErrorMessage(
                code: .unavailable,
                message: "the write was not stored: \(error) (store \(self.path)); nothing of it is visible"
            )
        }
        return ErrorMessage(
            code: .unavailable,
            message:
                "the write was not acknowledged: \(error) (store \(self.path)); the store takes no more writes until it is opened again, which replays what its log holds (restart the service)"
        )
    }

    /// What `write` does to the file's key, as the log's path works it out from memory.
    private static func apply(_ write: KVWrite, _ db: Database) throws -> KVWritten {
        let (written, effect) = Self.effect(of: write, on: try Self.get(write.key, db))
        if let effect { try Self.apply(effect, db) }
        return written
    }

    private static func apply(_ effect: KVEffect, _ db: Database) throws {
        switch effect {
        case .set(let key, let value, let version):
            try db.cachedStatement(
                sql: """
                    INSERT INTO kv (key, value, version) VALUES (?, ?, ?)
                    ON CONFLICT(key) DO UPDATE SET value = excluded.value, version = excluded.version
                    """
            ).execute(arguments: [key, Data(value), Int64(version)])
        case .delete(let key):
            try db.cachedStatement(sql: "DELETE FROM kv WHERE key = ?").execute(arguments: [key])
        }
    }
}

/// Why a store could not open.
public enum KVStoreError: Error, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    /// Another store holds the file: one store keeps every key in memory, so one owns a file.
    case alreadyOpen(path: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason):
            "cannot open the key-value store at \(path): \(reason); check the path is a writable SQLite file or a new name in a writable directory"
        case .alreadyOpen(let path):
            "cannot open the key-value store at \(path): another store has it open (a 'ferry serve kv' or a node's local space); a store keeps every key in memory, so one store owns a file: stop that one, or give this one another file"
        }
    }
}
