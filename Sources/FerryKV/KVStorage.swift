/// Where the key-value service keeps its keys: a SQLite file (``KVStore``) or PostgreSQL
/// (`PostgresKVStore`). Both keep the same promise: a write is acknowledged only once it is
/// committed and durable, and one that was not is wholly there or wholly absent.
public protocol KVStorage: Sendable {
    /// The value of `key`, as of the last committed write.
    func get(_ key: String) async throws -> KVValue
    /// Keys starting with `prefix`, in key order, at most `limit`, and no more than fits in one frame.
    func list(prefix: String, limit: Int) async throws -> KVEntries
    /// Queues `write` for the next group commit; `completion` runs once the write is durable, or
    /// with the error that kept it from being stored.
    func enqueue(_ write: KVWrite, completion: @escaping @Sendable (Result<KVWritten, any Error>) -> Void)
    /// Queues writes that were read together, so that they go into one group commit where the
    /// store can: as Redis syncs once for all it read in one turn of its loop.
    func enqueue(_ writes: [KVQueuedWrite])
    func close() throws
}

/// A write and what runs once it is durable, or with the error that kept it from being stored.
public struct KVQueuedWrite: Sendable {
    public let write: KVWrite
    public let completion: @Sendable (Result<KVWritten, any Error>) -> Void

    public init(_ write: KVWrite, completion: @escaping @Sendable (Result<KVWritten, any Error>) -> Void) {
        self.write = write
        self.completion = completion
    }
}

extension KVStorage {
    public func enqueue(_ writes: [KVQueuedWrite]) {
        for queued in writes { self.enqueue(queued.write, completion: queued.completion) }
    }

    /// Applies `write` and returns once it is durable.
    public func write(_ write: KVWrite) async throws -> KVWritten {
        try await withCheckedThrowingContinuation { continuation in
            self.enqueue(write) { continuation.resume(with: $0) }
        }
    }

    /// Refuses a write whose key or value is out of bounds, before it is queued.
    public static func validate(_ write: KVWrite) throws {
        switch write.operation {
        case .put(let value), .compareAndSet(_, let value): try KVLimits.validate(key: write.key, value: value)
        case .delete: try KVLimits.validate(key: write.key)
        }
    }
}
