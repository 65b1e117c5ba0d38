#if canImport(Glibc)
import Glibc
#endif

/// A connected TCP socket used blocking, every call bounded in time: for a thread of its own
/// (a move's connection, a guest's socket) and for a process that asks one question and exits
/// (the quick lookup), where an event loop would cost more than the question.
///
/// It does not own its descriptor: whoever made it calls ``close()``, or hands ``fd`` on.
public struct BlockingSocket: Sendable {
    /// How long a call may wait.
    public enum Patience: Sendable {
        /// Each send and receive call waits at most this long for the peer to move.
        case eachCall(Duration)
        /// Every call ends by this instant, however the peer drips: one deadline for the whole
        /// exchange.
        case until(ContinuousClock.Instant)
    }

    public let fd: Int32
    /// Who is at the other end, for errors.
    public let peer: String
    private let patience: Patience

    /// Takes over the connected socket `fd` (an accepted one), with TCP_NODELAY set.
    public init(adopting fd: Int32, peer: String, patience: Patience) {
        self.fd = fd
        self.peer = peer
        self.patience = patience
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if case .eachCall(let wait) = patience {
            Self.set(SO_RCVTIMEO, to: wait, on: fd)
            Self.set(SO_SNDTIMEO, to: wait, on: fd)
        }
    }

    /// Connects to `host:port`. With `numericHostOnly`, a host name is refused rather than looked
    /// up (a caller that must not wait for DNS).
    /// - Throws: ``PosixError`` whose operation names the address; a connect that the patience
    ///   ran out on says so.
    public static func connect(
        host: String,
        port: Int,
        patience: Patience,
        numericHostOnly: Bool = false
    ) throws(PosixError) -> BlockingSocket {
        let peer = hostAndPort(host, port)
        let operation = "cannot connect to \(peer)"
        let address = try AddressLookup(
            host: host,
            port: port,
            socketType: Int32(SOCK_STREAM.rawValue),
            flags: numericHostOnly ? AI_NUMERICHOST : 0,
            operation: operation
        )
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw PosixError.system(operation) }
        let socket = BlockingSocket(adopting: fd, peer: peer, patience: patience)
        // SO_SNDTIMEO bounds connect() too (Linux socket(7)); when it runs out, EINPROGRESS.
        guard socket.arm(SO_SNDTIMEO) else {
            Glibc.close(fd)
            throw PosixError(operation, reason: socket.ranOut("no answer"))
        }
        guard address.withSocketAddress({ Glibc.connect(fd, $0, $1) }) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw PosixError(
                operation,
                reason: code == EINPROGRESS ? socket.ranOut("no answer") : String(cString: strerror(code))
            )
        }
        return socket
    }

    /// Sends every byte of `bytes`.
    /// - Throws: ``PosixError`` naming the peer: an error, or the patience ran out.
    public func send(_ bytes: UnsafeRawBufferPointer) throws(PosixError) {
        let operation = "sending to \(self.peer)"
        var offset = 0
        while offset < bytes.count {
            guard self.arm(SO_SNDTIMEO) else { throw PosixError(operation, reason: self.ranOut("it took nothing")) }
            let sent = Glibc.send(self.fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if sent < 0 {
                switch self.next(after: errno) {
                case .again: continue
                case .ranOut: throw PosixError(operation, reason: self.ranOut("it took nothing"))
                case .failed(let reason): throw PosixError(operation, reason: reason)
                }
            }
            offset += sent
        }
    }

    /// Fills the whole of `buffer`.
    /// - Throws: ``PosixError`` naming the peer: an error, its end, or the patience ran out.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws(PosixError) {
        var offset = 0
        while offset < buffer.count {
            offset += try self.receiveSome(into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]))
        }
    }

    /// Waits for some bytes and receives what has come, at most `buffer.count`: how many.
    /// - Throws: ``PosixError`` naming the peer: an error, its end, or the patience ran out.
    public func receiveSome(into buffer: UnsafeMutableRawBufferPointer) throws(PosixError) -> Int {
        let operation = "receiving from \(self.peer)"
        while true {
            guard self.arm(SO_RCVTIMEO) else { throw PosixError(operation, reason: self.ranOut("nothing came")) }
            let got = recv(self.fd, buffer.baseAddress!, buffer.count, 0)
            if got < 0 {
                switch self.next(after: errno) {
                case .again: continue
                case .ranOut: throw PosixError(operation, reason: self.ranOut("nothing came"))
                case .failed(let reason): throw PosixError(operation, reason: reason)
                }
            }
            guard got > 0 else { throw PosixError(operation, reason: "it closed the connection") }
            return got
        }
    }

    /// Whether some input is there to read now.
    public var hasInput: Bool {
        var descriptor = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0
    }

    /// Ends the connection; a call blocked on it in another thread returns with an error.
    public func close() {
        shutdown(self.fd, Int32(SHUT_RDWR))
        Glibc.close(self.fd)
    }

    // MARK: Time

    private enum Next {
        case again
        case ranOut
        case failed(String)
    }

    /// What follows a call that failed with `code`: again after a signal, and under one deadline
    /// after a timeout (the kernel may end one a little early; the next ``arm(_:)`` says whether
    /// time is left); a call's own timeout is final. Anything else (the kernel's own ETIMEDOUT
    /// of a dead peer among them) fails with the system's words.
    private func next(after code: Int32) -> Next {
        if code == EINTR { return .again }
        guard code == EAGAIN || code == EWOULDBLOCK else { return .failed(String(cString: strerror(code))) }
        if case .until = self.patience { return .again }
        return .ranOut
    }

    /// What did not happen in time, in words.
    private func ranOut(_ what: String) -> String {
        switch self.patience {
        case .eachCall(let wait): "\(what) for \(wait)"
        case .until: "\(what) before the deadline"
        }
    }

    /// Before a call under one deadline, sets `option` (a send or receive timeout) to the time
    /// left; false when none is.
    private func arm(_ option: Int32) -> Bool {
        guard case .until(let deadline) = self.patience else { return true }
        let left = deadline - .now
        guard left > .zero else { return false }
        return Self.set(option, to: left, on: self.fd)
    }

    @discardableResult
    private static func set(_ option: Int32, to wait: Duration, on fd: Int32) -> Bool {
        let (seconds, attoseconds) = wait.components
        // Rounded up to a whole microsecond: a zero timeout would mean none.
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int((attoseconds + 999_999_999_999) / 1_000_000_000_000))
        if timeout.tv_usec == 1_000_000 { (timeout.tv_sec, timeout.tv_usec) = (timeout.tv_sec + 1, 0) }
        return setsockopt(fd, SOL_SOCKET, option, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0
    }
}
