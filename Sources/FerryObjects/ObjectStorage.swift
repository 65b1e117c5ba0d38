import FerryWire

/// Where persistent objects keep their state: a SQLite file (``ObjectStore``, shared by the nodes
/// of one host) or PostgreSQL (`PostgresObjectStore`, shared by nodes on any host). Both keep
/// the same promises: a save returns once it is durable, saves of one object are stored in the
/// order they were queued, and a save older than the one stored is refused (the epoch fence).
public protocol ObjectStorage: Sendable {
    /// The epoch of a new activation of `id`: one more than any before it.
    func nextEpoch(_ id: String) async throws -> UInt64
    /// The state `id` last saved, and the epoch that saved it.
    func load(_ id: String) async throws -> (state: [UInt8], epoch: UInt64)?
    /// Queues a save for the next group commit; `completion` runs once it is durable, or with the
    /// error that kept it from being stored (``ErrorMessage/Code/staleEpoch`` when a later
    /// activation saved already).
    func enqueueSave(
        _ id: String,
        type: String,
        state: [UInt8],
        epoch: UInt64,
        completion: @escaping @Sendable (Result<Void, any Error>) -> Void
    )
    /// Every stored object: id, type and epoch.
    func list() async throws -> [(id: String, type: String, epoch: UInt64)]
    func close() throws
}

extension ObjectStorage {
    /// Saves `state` as made by the activation of `epoch`, and returns once it is durable.
    public func save(_ id: String, type: String, state: [UInt8], epoch: UInt64) async throws {
        try await withCheckedThrowingContinuation { continuation in
            self.enqueueSave(id, type: type, state: state, epoch: epoch) { continuation.resume(with: $0) }
        }
    }

    /// Why a save of `id` from `epoch` was refused.
    public static func stale(_ id: String, epoch: UInt64) -> ErrorMessage {
        ErrorMessage(
            code: .staleEpoch,
            message:
                "the state of '\(id)' from epoch \(epoch) was not saved: a later activation saved already (it lost its lease and is active elsewhere)"
        )
    }
}
