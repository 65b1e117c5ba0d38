import FerryEndpoints
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// One TCP connection on a blocking socket, every call within one deadline: what a process that
/// asks one question and exits needs, without an event loop to start.
struct BlockingConnection {
    private let descriptor: Int32
    private let deadline: ContinuousClock.Instant

    /// Connects to an IPv4 or IPv6 address (not a host name); nil when it cannot by `deadline`.
    init?(to endpoint: ServiceEndpoint, deadline: ContinuousClock.Instant) {
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        let family: Int32
        if inet_pton(AF_INET, endpoint.host, &v4.sin_addr) == 1 {
            family = AF_INET
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = UInt16(endpoint.port).bigEndian
        } else if inet_pton(AF_INET6, endpoint.host, &v6.sin6_addr) == 1 {
            family = AF_INET6
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = UInt16(endpoint.port).bigEndian
        } else {
            return nil
        }
        // As NIO does when the command makes its socket: a reader that left the pipe does not
        // kill the process, so the command's exit status stays the same on either path.
        signal(SIGPIPE, SIG_IGN)
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        self.descriptor = descriptor
        self.deadline = deadline
        // SO_SNDTIMEO bounds connect() too (Linux socket(7)).
        guard self.bound(SO_SNDTIMEO) else {
            self.close()
            return nil
        }
        let connected =
            family == AF_INET
            ? withUnsafePointer(to: &v4) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            : withUnsafePointer(to: &v6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        guard connected == 0 else {
            self.close()
            return nil
        }
    }

    /// Sends every byte; false on an error or at the deadline.
    func send(_ bytes: ByteBuffer) -> Bool {
        bytes.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                guard self.bound(SO_SNDTIMEO) else { return false }
                let sent = Glibc.send(
                    self.descriptor,
                    bytes.baseAddress! + offset,
                    bytes.count - offset,
                    Int32(MSG_NOSIGNAL)
                )
                if sent < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += sent
            }
            return true
        }
    }

    /// Exactly `count` bytes; nil at an error, the peer's end or the deadline.
    func receive(exactly count: Int) -> ByteBuffer? {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            guard self.bound(SO_RCVTIMEO) else { return nil }
            let received = bytes.withUnsafeMutableBytes {
                Glibc.recv(self.descriptor, $0.baseAddress! + filled, count - filled, 0)
            }
            if received < 0, errno == EINTR { continue }
            guard received > 0 else { return nil }
            filled += received
        }
        return ByteBuffer(bytes: bytes)
    }

    func close() { Glibc.close(self.descriptor) }

    /// Sets `option` (a send or receive timeout) to the time left; false when none is.
    private func bound(_ option: Int32) -> Bool {
        let left = self.deadline - .now
        guard left > .zero else { return false }
        let (seconds, attoseconds) = left.components
        // At least a microsecond: a zero timeout would mean none.
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: max(1, Int(attoseconds / 1_000_000_000_000)))
        return setsockopt(self.descriptor, SOL_SOCKET, option, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0
    }
}
