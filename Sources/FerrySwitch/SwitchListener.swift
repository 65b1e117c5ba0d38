import CFerryLinux
import FerryEndpoints
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The listening socket a switch accepts on. A reload passes it from the old switch to the new
/// one, so it belongs to neither: it closes when the last switch using it is gone.
public final class SwitchListener: Sendable {
    let fd: CInt
    /// Where it listens (with the port the kernel chose for port 0).
    public let address: ServiceEndpoint

    /// Binds and listens on `endpoint` (port 0 for any free port), non-blocking.
    public init(_ endpoint: ServiceEndpoint) throws {
        do {
            (self.fd, self.address) = try BoundSocket.open(endpoint, nonblocking: true, backlog: 4096)
        } catch {
            throw SwitchError.cannotListen(endpoint.description, error.reason)
        }
    }

    deinit { close(self.fd) }

    /// Accepts every connection waiting on the listening socket `fd` (non-blocking, TCP_NODELAY
    /// set) and gives each to `take`; returns once none waits. A failure other than that (most
    /// likely out of descriptors) is logged and the switch goes on.
    static func acceptWaiting(on fd: CInt, logger: Logger, _ take: (CInt) -> Void) {
        while true {
            let client = ferry_accept_nonblocking(fd)
            guard client >= 0 else {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno != EAGAIN, errno != EWOULDBLOCK {
                    logger.warning("switch: accept failed: \(String(cString: strerror(errno)))")
                }
                return
            }
            var one: CInt = 1
            setsockopt(client, CInt(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
            take(client)
        }
    }
}
