#if canImport(Glibc)
import Glibc
#endif

/// How a migration connection's bytes travel: straight through a blocking socket
/// (``PlainMigrationTransport``), or through TLS when the node has the cluster's credentials
/// (``TLSMigrationTransport``). Each call blocks the move's thread for at most the hand-over's
/// timeout.
protocol MigrationTransport: AnyObject, Sendable {
    /// Sends every byte of `bytes`, or throws ``MigrationError/transport(_:)``.
    func send(_ bytes: UnsafeRawBufferPointer) throws
    /// Fills the whole of `buffer`, or throws ``MigrationError/transport(_:)``.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws
    /// Whether some input is there to read now.
    var hasInput: Bool { get }
    /// Ends the connection; a send or receive blocked on it returns with an error.
    func close()
}

/// A blocking TCP socket: a move's memory goes from the guest's memory to the socket, and from
/// the socket into the buffer the target restores from, with no copy between.
final class PlainMigrationTransport: MigrationTransport, @unchecked Sendable {
    // Sendable: the descriptor is immutable; `close` may come from another thread.
    let fd: Int32
    private let peer: String

    init(fd: Int32, peer: String, timeout: Duration) {
        self.fd = fd
        self.peer = peer
        var time = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    func send(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = Glibc.send(self.fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if sent < 0, errno == EINTR { continue }
            guard sent > 0 else {
                throw MigrationError.transport(
                    "sending to \(self.peer) failed: \(sent < 0 ? String(cString: strerror(errno)) : "closed")"
                )
            }
            offset += sent
        }
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws {
        var offset = 0
        while offset < buffer.count {
            let got = recv(self.fd, buffer.baseAddress! + offset, buffer.count - offset, 0)
            if got < 0, errno == EINTR { continue }
            guard got > 0 else {
                throw MigrationError.transport(
                    got == 0
                        ? "\(self.peer) closed the connection"
                        : "receiving from \(self.peer) failed: \(String(cString: strerror(errno)))"
                )
            }
            offset += got
        }
    }

    var hasInput: Bool {
        var descriptor = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0
    }

    func close() {
        shutdown(self.fd, Int32(SHUT_RDWR))
        Glibc.close(self.fd)
    }
}
