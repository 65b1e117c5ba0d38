/// How a server runs its requests — the seed's four server designs.
public enum ExecutionModel: String, CaseIterable, Sendable {
    /// One thread accepts, reads and serves one request at a time, to completion (the seed's
    /// single-threaded server): a request blocked on disk holds up everyone.
    case iterative
    /// A new kernel thread for every request.
    case threadPerRequest = "thread-per-request"
    /// The dispatcher thread reads requests and hands each to a bounded pool of workers that may
    /// block; when the queue is full the dispatcher answers 503 at once.
    case dispatcher
    /// Non-blocking throughout, one event loop per core and no worker threads (the seed's
    /// finite-state machine): a read that would block on disk is parked and retried.
    case eventDriven = "event-driven"
}
