/// Where one client connection of the l7 switch stands, and what to do next: its phase, the
/// deadline of the wait it is in, the backends its request has tried, whether the request may be
/// sent again and whether its answer has begun. A value that takes events and returns actions,
/// with the time passed in: the loop owns the sockets and does what it is told, and the rules
/// (408, 502, 503, 504, retries of idempotent requests, lingering close, retirement) are tested
/// without any socket (as Hummingbird and swift-nio's HTTP/2 keep connection logic).
struct ExchangeState {
    enum Phase: Equatable {
        /// Between requests: reading a request head.
        case awaitingRequest
        /// A request is on its way to a backend, or its answer on its way back.
        case forwarding
        /// The last answer is being written; then the connection closes.
        case closing
    }

    /// What the loop must do.
    enum Action: Equatable {
        /// Close the client's connection now.
        case close
        /// Answer with an error of the switch's own, then close once it is written.
        case refuse(status: Int, reason: String, message: String)
        /// Send the request to another backend (``excluded(outside:)`` says which may not).
        case retry
        /// Stop writing and drop what the client still sends until it closes.
        case shutdownWriting
    }

    /// In the clock's nanoseconds.
    struct Timeouts: Equatable {
        /// How long a client may take to send a request head, from its first byte (or the accept).
        var header: UInt64
        /// How long a request body may pause between two reads.
        var body: UInt64
        /// How long a client may stay idle between requests.
        var idle: UInt64
        /// How long a backend may take to start answering, and stay silent while it answers.
        var backend: UInt64
    }

    let timeouts: Timeouts
    private(set) var phase = Phase.awaitingRequest
    /// When the current wait gives up, in the clock's nanoseconds.
    private(set) var deadline: UInt64
    /// The request may be sent again: an idempotent method without a body.
    private(set) var repeatable = false
    /// Part of the answer is on its way to the client: nothing else may be sent instead.
    private(set) var responseStarted = false
    /// The connection stays open after this answer.
    private(set) var clientKeepAlive = true
    /// The backends this request went to.
    private(set) var tried: Set<Int> = []
    /// The writing side is shut and the switch waits for the client to close.
    private(set) var lingering = false
    /// Between requests with no byte of the next one yet: the idle timeout runs, not the head's.
    private(set) var idle = false
    /// When the request body's pause gives up; `nil` when no body is arriving.
    private(set) var bodyDeadline: UInt64?

    /// When the request in progress was read (the clock's nanoseconds): its latency's start.
    private(set) var requestStartedAt: UInt64 = 0

    init(timeouts: Timeouts, now: UInt64) {
        self.timeouts = timeouts
        self.deadline = now + timeouts.header
    }

    /// Bytes came from the client: the first of a head after an idle wait starts the head's
    /// timeout (a head sent a byte at a time is bounded from its first byte, not its last); a
    /// body's restart its pause.
    mutating func clientBytesArrived(now: UInt64) {
        if self.phase == .awaitingRequest, self.idle {
            self.idle = false
            self.deadline = now + self.timeouts.header
        } else if self.bodyDeadline != nil {
            self.bodyDeadline = now + self.timeouts.body
        }
    }

    // MARK: Requests

    /// A request head was read: it goes to a backend, which has `timeouts.backend` to answer;
    /// the client has `timeouts.body` between reads of a body still to come.
    mutating func requestStarted(repeatable: Bool, keepAlive: Bool, bodyFollows: Bool, now: UInt64) {
        self.requestStartedAt = now
        self.bodyDeadline = bodyFollows ? now + self.timeouts.body : nil
        self.phase = .forwarding
        self.repeatable = repeatable
        self.clientKeepAlive = keepAlive
        self.responseStarted = false
        self.tried = []
        self.deadline = now + self.timeouts.backend
    }

    /// The request's body was read to its end: the backend's wait for an answer starts now (a
    /// slow upload is the client's doing, not the backend's).
    mutating func requestBodyEnded(now: UInt64) {
        self.bodyDeadline = nil
        if !self.responseStarted { self.deadline = now + self.timeouts.backend }
    }

    /// The backends the request may not go to: those its route excludes and those it tried.
    func excluded(outside: Set<Int>) -> Set<Int> {
        self.tried.isEmpty ? outside : outside.union(self.tried)
    }

    /// The request goes to `backend`.
    mutating func picked(_ backend: Int) {
        self.tried.insert(backend)
    }

    /// No backend is left to take the request: 503 when none was tried, else 502.
    func noBackendLeft() -> Action {
        self.tried.isEmpty
            ? .refuse(status: 503, reason: "Service Unavailable", message: "no backend is available for this request")
            : .refuse(status: 502, reason: "Bad Gateway", message: "no backend could answer this request")
    }

    // MARK: Answers

    /// The answer's head came. The client connection outlives it only if it has a length the
    /// client can see, the request's body was read to its end, and the switch is not retiring.
    mutating func responseStarted(untilClose: Bool, requestComplete: Bool, retiring: Bool, now: UInt64) {
        if untilClose || !requestComplete || retiring { self.clientKeepAlive = false }
        self.responseStarted = true
        self.deadline = now + self.timeouts.backend
    }

    /// Bytes of the answer came: the backend is not silent.
    mutating func responseProgressed(now: UInt64) {
        self.deadline = now + self.timeouts.backend
    }

    /// The answer is complete: the next request may start, unless the connection ends here.
    mutating func responseFinished(clientEnded: Bool, now: UInt64) {
        self.phase = self.clientKeepAlive && !clientEnded ? .awaitingRequest : .closing
        self.idle = self.phase == .awaitingRequest
        self.bodyDeadline = nil
        self.deadline = now + (self.idle ? self.timeouts.idle : self.timeouts.header)
    }

    // MARK: Failures

    /// The backend connection broke (`reused`: it came from the idle pool). Before any of the
    /// answer went out, a request that may be repeated goes to another backend, or to the same
    /// one when only a pooled connection had gone stale; else the client gets 502. After, the
    /// client connection closes: half an answer cannot be taken back.
    mutating func backendFailed(_ backend: Int, reused: Bool) -> Action {
        if self.responseStarted { return .close }
        guard self.repeatable else {
            return .refuse(status: 502, reason: "Bad Gateway", message: "the backend failed before answering")
        }
        if reused { self.tried.remove(backend) }
        return .retry
    }

    /// The backend's answer cannot be passed on (not HTTP, too slow): `status` unless part of the
    /// answer already went out, which leaves only closing.
    func backendUnusable(status: Int, reason: String, message: String) -> Action {
        self.responseStarted ? .close : .refuse(status: status, reason: reason, message: message)
    }

    /// The switch answered with an error of its own: the connection closes once it is written.
    mutating func refused(now: UInt64) {
        self.phase = .closing
        self.bodyDeadline = nil
        self.deadline = now + self.timeouts.header
    }

    /// The last answer is written: shut the writing side once, then wait for the client.
    mutating func answerWritten() -> Action? {
        guard self.phase == .closing, !self.lingering else { return nil }
        self.lingering = true
        return .shutdownWriting
    }

    // MARK: Time

    /// What to do at `now`: nothing before the deadline; after it, a connection that said nothing
    /// of a new request closes, one that began a head gets 408, a body that stalled gets 408, a
    /// backend that did not answer gives 504, and a lingering close ends. A retiring switch
    /// closes connections between requests at once.
    func expired(now: UInt64, retiring: Bool, hasRequestBytes: Bool) -> Action? {
        if retiring, self.phase == .awaitingRequest, !hasRequestBytes { return .close }
        if let body = self.bodyDeadline, now > body {
            let seconds = Double(self.timeouts.body) / 1e9
            return self.backendUnusable(
                status: 408,
                reason: "Request Timeout",
                message:
                    "the request body stalled for \(seconds == seconds.rounded() ? "\(Int(seconds))" : "\(seconds)") s"
            )
        }
        // While a body arrives, its pause is the only clock: the backend may wait for all of it.
        guard now > self.deadline, self.bodyDeadline == nil || self.phase != .forwarding else { return nil }
        switch self.phase {
        case .awaitingRequest:
            return hasRequestBytes
                ? .refuse(status: 408, reason: "Request Timeout", message: "the request head did not arrive in time")
                : .close
        case .forwarding:
            return self.backendUnusable(
                status: 504,
                reason: "Gateway Timeout",
                message: "the backend did not answer in time"
            )
        case .closing:
            return .close
        }
    }
}
