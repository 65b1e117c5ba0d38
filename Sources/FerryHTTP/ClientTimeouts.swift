import FerryPosix

/// How long a client of an HTTP server may keep it waiting — what nginx calls
/// `client_header_timeout`, `client_body_timeout` and `keepalive_timeout`, and HAProxy
/// `timeout http-request` and `timeout http-keep-alive`. A client that sends a head one byte at a
/// time (slowloris) is bounded by `header`, counted from its first byte, not from its last.
public struct ClientTimeouts: Sendable, Equatable {
    /// From a request's first byte (or from the accept, for a connection's first request) to the
    /// end of its head.
    public var header: Duration
    /// Between two reads of a request body.
    public var body: Duration
    /// Between the end of an answer and the first byte of the next request.
    public var idle: Duration

    public init(header: Duration = .seconds(10), body: Duration = .seconds(30), idle: Duration = .seconds(60)) {
        self.header = header
        self.body = body
        self.idle = idle
    }

    /// A flag's value in seconds as a timeout, or the reason it cannot be one.
    public static func seconds(_ value: Double, flag: String) throws(ClientTimeoutsError) -> Duration {
        guard let timeout = Duration(positiveSeconds: value, atMost: 86_400) else {
            throw ClientTimeoutsError(
                message: "\(flag) takes a number of seconds above 0 and at most 86400, got \(value)"
            )
        }
        return timeout
    }
}

public struct ClientTimeoutsError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { self.message }
}

/// Which of its ``ClientTimeouts`` a server connection's client is under, and when it runs out.
/// A value that takes events with the time passed in, so the rule is tested without sockets; each
/// server's loop keeps one per connection and looks at ``expired(now:)`` on its timer.
public struct ClientDeadline: Sendable, Equatable {
    public enum Wait: Sendable, Equatable {
        /// Between requests: no byte of the next one yet.
        case idle
        /// A request head is arriving.
        case head
        /// A request body is arriving.
        case body
        /// The server is answering: the client owes nothing.
        case none
        /// The answer waits for the client to take data. Bounded by `idle`, as HAProxy's `timeout
        /// client` counts from the last activity either way (nginx's `send_timeout`).
        case send
    }

    public let timeouts: ClientTimeouts
    public private(set) var wait: Wait
    /// When the wait gives up, in monotonic nanoseconds.
    public private(set) var deadline: UInt64
    /// Bytes of a request came since the last answer (or the accept).
    public private(set) var requestBegun = false

    /// A new connection: its first head is due within `header` of the accept.
    public init(timeouts: ClientTimeouts, now: UInt64) {
        self.timeouts = timeouts
        self.wait = .head
        self.deadline = now + timeouts.header.wholeNanoseconds
    }

    /// Bytes of a request came: the first of a head starts its `header` wait; a body's reset `body`.
    public mutating func requestBytesArrived(now: UInt64) {
        self.requestBegun = true
        switch self.wait {
        case .idle: self.start(.head, now: now)
        case .body: self.start(.body, now: now)
        case .head, .none, .send: break
        }
    }

    /// The head is complete: the body is due next, or the server answers.
    public mutating func headRead(bodyFollows: Bool, now: UInt64) {
        if bodyFollows { self.start(.body, now: now) } else { self.wait = .none }
    }

    /// The whole request is read: the server answers.
    public mutating func requestRead() {
        self.wait = .none
    }

    /// The answer cannot go on until the client takes what was written: its clock starts.
    public mutating func sendStalled(now: UInt64) {
        if self.wait == .none { self.start(.send, now: now) }
    }

    /// The client took data: the answer goes on, and the clock stops until it stalls again.
    public mutating func sendResumed() {
        if self.wait == .send { self.wait = .none }
    }

    /// The answer is written: the connection waits for the next request.
    public mutating func answered(now: UInt64) {
        self.requestBegun = false
        self.start(.idle, now: now)
    }

    /// The server wrote to the client. For a server that cannot tell where its answer ends (it
    /// calls ``answered(now:)`` once the request is read), the idle wait counts from the last
    /// write, as HAProxy's `timeout client` counts from the last activity either way.
    public mutating func serverWrote(now: UInt64) {
        if self.wait == .idle { self.start(.idle, now: now) }
    }

    /// The wait that ran out by `now`, if one did.
    public func expired(now: UInt64) -> Wait? {
        self.wait != .none && now > self.deadline ? self.wait : nil
    }

    /// Whether running out of `wait` is answered 408 before the close: the client began a request
    /// (as HAProxy answers; nginx closes without a word). One that said nothing is just closed.
    public func answers408(_ wait: Wait) -> Bool {
        (wait == .head || wait == .body) && self.requestBegun
    }

    /// A message for the client or the log about `wait` running out.
    public func reason(_ wait: Wait) -> String {
        switch wait {
        case .head: "the request head did not arrive within \(Self.text(self.timeouts.header))"
        case .body: "the request body stalled for \(Self.text(self.timeouts.body))"
        case .idle, .none: "the connection was idle for \(Self.text(self.timeouts.idle))"
        case .send: "the client took no data for \(Self.text(self.timeouts.idle))"
        }
    }

    private mutating func start(_ wait: Wait, now: UInt64) {
        self.wait = wait
        let timeout =
            switch wait {
            case .head: self.timeouts.header
            case .body: self.timeouts.body
            case .idle, .none, .send: self.timeouts.idle
            }
        self.deadline = now + timeout.wholeNanoseconds
    }

    private static func text(_ duration: Duration) -> String {
        let seconds = duration.inSeconds
        return seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
    }
}
