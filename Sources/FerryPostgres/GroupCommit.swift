import NIOConcurrencyHelpers
import PostgresNIO

/// Writes gathered while the previous batch commits, committed together in one transaction:
/// one round of the server's WAL flush for the batch, as the SQLite stores' group commit does.
/// Batches commit one after another, so the writes of one key are stored in the order queued.
final class GroupCommit<Write: Sendable, Written: Sendable>: Sendable {
    typealias Completion = @Sendable (Result<Written, any Error>) -> Void
    typealias Apply = @Sendable (Write, PostgresConnection) async throws -> Result<Written, any Error>

    private let database: PostgresDatabase
    private let apply: Apply
    private let failure: @Sendable (String) -> any Error
    private let state = NIOLockedValueBox((waiting: [(Write, Completion)](), draining: false))

    /// - Parameters:
    ///   - apply: one write, inside the batch's transaction; a refused write is a failed result,
    ///     a thrown error fails the whole batch.
    ///   - failure: the error each write of a batch that did not commit gets, from the reason.
    init(
        _ database: PostgresDatabase,
        failure: @escaping @Sendable (String) -> any Error,
        apply: @escaping Apply
    ) {
        self.database = database
        self.apply = apply
        self.failure = failure
    }

    func enqueue(_ write: Write, _ completion: @escaping Completion) {
        let start = self.state.withLockedValue { state in
            state.waiting.append((write, completion))
            defer { state.draining = true }
            return !state.draining
        }
        if start { Task { await self.drain() } }
    }

    private func drain() async {
        while true {
            let batch = self.state.withLockedValue { state in
                if state.waiting.isEmpty { state.draining = false }
                defer { state.waiting = [] }
                return state.waiting
            }
            if batch.isEmpty { return }
            do {
                let apply = self.apply
                let writes = batch.map(\.0)
                let results = try await self.database.client.withTransaction(logger: self.database.logger) {
                    connection in
                    var results: [Result<Written, any Error>] = []
                    for write in writes { results.append(try await apply(write, connection)) }
                    return results
                }
                for ((_, completion), result) in zip(batch, results) { completion(result) }
            } catch {
                let failure = self.failure(PostgresDatabase.reason(error))
                for (_, completion) in batch { completion(.failure(failure)) }
            }
        }
    }
}
