import CFerryLinux

#if canImport(Glibc)
import Glibc
#endif

/// Binding a socket, the one way every part of Ferry that works below NIO does it: the file
/// server's front ends, the switches, the superserver.
public enum BoundSocket {
    /// A socket bound to `host:port` with SO_REUSEADDR, listening when it is a stream socket,
    /// and the address it got (port 0 asks for any free port).
    /// - Throws: ``PosixError`` whose operation names the address.
    public static func open(
        host: String,
        port: Int,
        datagram: Bool = false,
        nonblocking: Bool = false,
        backlog: Int32 = 128
    ) throws(PosixError) -> (fd: Int32, address: PeerAddress) {
        let operation =
            datagram ? "cannot bind \(hostAndPort(host, port))" : "cannot listen on \(hostAndPort(host, port))"
        let socketType = Int32((datagram ? SOCK_DGRAM : SOCK_STREAM).rawValue)
        let address = try AddressLookup(
            host: host,
            port: port,
            socketType: socketType,
            flags: AI_PASSIVE,
            operation: operation
        )
        let type = socketType | Int32(SOCK_CLOEXEC.rawValue) | (nonblocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        let fd = socket(address.family, type, 0)
        guard fd >= 0 else { throw PosixError.system(operation) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard address.withSocketAddress({ bind(fd, $0, $1) }) == 0, datagram || listen(fd, backlog) == 0 else {
            let error = PosixError.system(operation)
            close(fd)
            throw error
        }
        return (fd, PeerAddress.local(of: fd) ?? PeerAddress(bytes: [], port: port))
    }

    /// Accepts one connection waiting on the listening socket `fd`, non-blocking with
    /// TCP_NODELAY set; `nil` once none waits. A connection the client gave up on before it was
    /// taken (ECONNABORTED) and a signal (EINTR) are skipped; another failure (most likely out of
    /// descriptors) is passed to `failed`.
    public static func accept(on fd: Int32, failed: (PosixError) -> Void = { _ in }) -> Int32? {
        while true {
            let client = ferry_accept_nonblocking(fd)
            if client >= 0 {
                var one: Int32 = 1
                setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return client
            }
            if errno == EINTR || errno == ECONNABORTED { continue }
            if errno != EAGAIN, errno != EWOULDBLOCK { failed(.system("accept")) }
            return nil
        }
    }
}

/// A bound, listening, non-blocking TCP socket, closed when the last user lets it go.
public final class TCPListener: Sendable {
    public let fd: Int32
    /// Where it listens, with the port the kernel picked for port 0.
    public let address: PeerAddress

    /// Binds and listens on `host:port`; `port` 0 picks a free port.
    public init(host: String, port: Int, backlog: Int32 = 1024) throws(PosixError) {
        (self.fd, self.address) = try BoundSocket.open(host: host, port: port, nonblocking: true, backlog: backlog)
    }

    deinit { close(self.fd) }

    /// The next waiting connection (see ``BoundSocket/accept(on:failed:)``).
    public func accept(failed: (PosixError) -> Void = { _ in }) -> Int32? {
        BoundSocket.accept(on: self.fd, failed: failed)
    }
}
