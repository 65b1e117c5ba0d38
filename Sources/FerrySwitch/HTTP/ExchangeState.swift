import FerryHTTP
import FerryPosix

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

    struct Timeouts: Equatable {
        /// How long a client may take over a head or a body, and stay idle between requests.
        var client: ClientTimeouts
        /// How long a backend may take to start answering, and stay silent while it answers, in
        /// the clock's nanoseconds.
        var backend: UInt64
    }

    let timeouts: Timeouts
    private(set) var phase = Phase.awaitingRequest
    /// The client's side: its head, body and idle waits (the rule every Ferry HTTP server keeps).
    private(set) var client: ClientDeadline
    /// The backend's wait while forwarding, the lingering close's while closing.
    private var ownDeadline: UInt64 = 0
    /// When the current wait gives up, in the clock's nanoseconds.
    var deadline: UInt64 { self.phase == .awaitingRequest ? self.client.deadline : self.ownDeadline }
    /// The request may be sent again: an idempotent method without a body.
    private(set) var repeatable = false
    /// Part of the answer is on its way to the client: nothing else may be sent instead.
    private(set) var responseStarted = false
    /// The connection stays open after this answer.
    private(set) var clientKeepAlive = true
    /// The backends this request went to.
    private(set) var tried = TriedBackends()
    /// The writing side is shut and the switch waits for the client to close.
    private(set) var lingering = false

    /// When the request in progress was read (the clock's nanoseconds): its latency's start.
    private(set) var requestStartedAt: UInt64 = 0

    init(timeouts: Timeouts, now: UInt64) {
        self.timeouts = timeouts
        self.client = ClientDeadline(timeouts: timeouts.client, now: now)
    }

    /// Bytes came from the client: the first of a head after an idle wait starts the head's
    /// timeout (a head sent a byte at a time is bounded from its first byte, not its last); a
    /// body's restart its pause.
    mutating func clientBytesArrived(now: UInt64) {
        self.client.requestBytesArrived(now: now)
    }

    // MARK: Requests

    /// A request head was read: it goes to a backend, which has `timeouts.backend` to answer;
    /// the client has `timeouts.body` between reads of a body still to come.
    mutating func requestStarted(repeatable: Bool, keepAlive: Bool, bodyFollows: Bool, now: UInt64) {
        self.requestStartedAt = now
        self.client.headRead(bodyFollows: bodyFollows, now: now)
        self.phase = .forwarding
        self.repeatable = repeatable
        self.clientKeepAlive = keepAlive
        self.responseStarted = false
        self.tried = TriedBackends()
        self.ownDeadline = now + self.timeouts.backend
    }

    /// The request's body was read to its end: the backend's wait for an answer starts now (a
    /// slow upload is the client's doing, not the backend's).
    mutating func requestBodyEnded(now: UInt64) {
        self.client.requestRead()
        if !self.responseStarted { self.ownDeadline = now + self.timeouts.backend }
    }

    /// The backends the request may not go to: those its route excludes and those it tried.
    func excluded(outside: Set<Int>) -> Set<Int> {
        self.tried.isEmpty ? outside : outside.union(self.tried.all)
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
        self.ownDeadline = now + self.timeouts.backend
    }

    /// Bytes of the answer came: the backend is not silent.
    mutating func responseProgressed(now: UInt64) {
        self.ownDeadline = now + self.timeouts.backend
    }

    /// The answer is complete: the next request may start, unless the connection ends here.
    mutating func responseFinished(clientEnded: Bool, now: UInt64) {
        self.phase = self.clientKeepAlive && !clientEnded ? .awaitingRequest : .closing
        if self.phase == .awaitingRequest { self.client.answered(now: now) } else { self.linger(now: now) }
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
        self.linger(now: now)
    }

    /// A closing connection waits for its client to close for as long as a head may take.
    private mutating func linger(now: UInt64) {
        self.ownDeadline = now + self.timeouts.client.header.wholeNanoseconds
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
        switch self.phase {
        case .awaitingRequest:
            if retiring, !hasRequestBytes { return .close }
            guard self.client.expired(now: now) != nil else { return nil }
            return hasRequestBytes
                ? .refuse(status: 408, reason: "Request Timeout", message: "the request head did not arrive in time")
                : .close
        case .forwarding:
            // While a body arrives, its pause is the only clock: the backend may wait for all of it.
            if self.client.wait == .body {
                guard let wait = self.client.expired(now: now) else { return nil }
                return self.backendUnusable(status: 408, reason: "Request Timeout", message: self.client.reason(wait))
            }
            guard now > self.ownDeadline else { return nil }
            return self.backendUnusable(
                status: 504,
                reason: "Gateway Timeout",
                message: "the backend did not answer in time"
            )
        case .closing:
            return now > self.ownDeadline ? .close : nil
        }
    }
}

/// The backends a request went to: nearly always one, so a bit for each of the first 64 (no
/// allocation per request, nothing kept by an idle connection) and a set only beyond them.
struct TriedBackends: Equatable {
    private var first64: UInt64 = 0
    private var beyond: Set<Int> = []

    var isEmpty: Bool { self.first64 == 0 && self.beyond.isEmpty }

    mutating func insert(_ backend: Int) {
        if backend < 64 { self.first64 |= 1 << backend } else { self.beyond.insert(backend) }
    }

    mutating func remove(_ backend: Int) {
        if backend < 64 { self.first64 &= ~(1 << backend) } else { self.beyond.remove(backend) }
    }

    /// As a set, for the balancer (only when a request is retried).
    var all: Set<Int> {
        var all = self.beyond
        var bits = self.first64
        while bits != 0 {
            all.insert(bits.trailingZeroBitCount)
            bits &= bits - 1
        }
        return all
    }
}
