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
        let operation = "cannot connect to \(host.contains(":") ? "[\(host)]" : host):\(port)"
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (numericHostOnly ? AI_NUMERICHOST : 0)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let info = list else {
            throw PosixError(operation, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw PosixError.system(operation) }
        let socket = BlockingSocket(adopting: fd, peer: "\(host):\(port)", patience: patience)
        // SO_SNDTIMEO bounds connect() too (Linux socket(7)); when it runs out, EINPROGRESS.
        guard socket.arm(SO_SNDTIMEO), Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let error = errno
            Glibc.close(fd)
            throw PosixError(operation, reason: socket.reason(error, waiting: "no answer"))
        }
        return socket
    }

    /// Sends every byte of `bytes`.
    /// - Throws: ``PosixError`` naming the peer: an error, or the patience ran out.
    public func send(_ bytes: UnsafeRawBufferPointer) throws(PosixError) {
        var offset = 0
        while offset < bytes.count {
            guard self.arm(SO_SNDTIMEO) else { throw self.failure(sending: true, ETIMEDOUT) }
            let sent = Glibc.send(self.fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if sent < 0, errno == EINTR { continue }
            guard sent > 0 else { throw self.failure(sending: true, sent < 0 ? errno : EPIPE) }
            offset += sent
        }
    }

    /// Fills the whole of `buffer`.
    /// - Throws: ``PosixError`` naming the peer: an error, its end, or the patience ran out.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws(PosixError) {
        var offset = 0
        while offset < buffer.count {
            guard self.arm(SO_RCVTIMEO) else { throw self.failure(sending: false, ETIMEDOUT) }
            let got = recv(self.fd, buffer.baseAddress! + offset, buffer.count - offset, 0)
            if got < 0, errno == EINTR { continue }
            guard got > 0 else {
                if got == 0 { throw PosixError("receiving from \(self.peer)", reason: "it closed the connection") }
                throw self.failure(sending: false, errno)
            }
            offset += got
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

    private func failure(sending: Bool, _ code: Int32) -> PosixError {
        PosixError(
            sending ? "sending to \(self.peer)" : "receiving from \(self.peer)",
            reason: self.reason(code, waiting: sending ? "it took nothing" : "nothing came")
        )
    }

    /// The system's words for `code`, or what did not happen in time for a timeout's.
    private func reason(_ code: Int32, waiting: String) -> String {
        guard code == EAGAIN || code == EWOULDBLOCK || code == EINPROGRESS || code == ETIMEDOUT else {
            return String(cString: strerror(code))
        }
        switch self.patience {
        case .eachCall(let wait): return "\(waiting) for \(wait)"
        case .until: return "\(waiting) before the deadline"
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
        // At least a microsecond: a zero timeout would mean none.
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: max(1, Int(attoseconds / 1_000_000_000_000)))
        return setsockopt(fd, SOL_SOCKET, option, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0
    }
}
