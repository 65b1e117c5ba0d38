import FerryEndpoints
import FerryPosix

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
            let (fd, bound) = try BoundSocket.open(
                host: endpoint.host,
                port: endpoint.port,
                nonblocking: true,
                backlog: 4096
            )
            self.fd = fd
            self.address = ServiceEndpoint(host: endpoint.host, port: bound.port)
        } catch {
            throw SwitchError.cannotListen(endpoint.description, error.reason)
        }
    }

    deinit { close(self.fd) }
}
