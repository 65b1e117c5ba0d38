import CFerryLinux
import FerryEndpoints
import Foundation
import Logging
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// The migration port: a node's listening socket for processes that move here. Each connection
/// is served on a thread of its own, blocking, so that memory goes from the socket into one
/// buffer without passing through an event loop.
public final class MigrationListener: Sendable {
    public let endpoint: ServiceEndpoint
    private let fd: Int32
    private let closed = NIOLockedValueBox(false)

    /// Listens on `endpoint` (port 0 picks one) and hands each connection to `host`.
    public init(_ endpoint: ServiceEndpoint, host: ProcessHost) throws {
        let (fd, bound) = try BoundSocket.open(endpoint)
        self.fd = fd
        self.endpoint = bound
        host.migrationEndpoint.withLockedValue { $0 = bound }
        let thread = Thread { [self] in self.accept(host) }
        thread.name = "ferry-migration"
        thread.start()
    }

    private func accept(_ host: ProcessHost) {
        while true {
            var address = sockaddr_storage()
            let client = ferry_accept_blocking(self.fd, &address)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if self.closed.withLockedValue({ $0 }) { return }
                host.logger.error("the migration port \(self.endpoint) failed: \(String(cString: strerror(errno)))")
                return
            }
            let peer = BoundSocket.describe(address).map { "\($0.host):\($0.port)" } ?? "?"
            let socket = MigrationSocket(fd: client, peer: peer, timeout: Handover.timeout)
            let thread = Thread { host.arrive(socket) }
            thread.name = "ferry-arrival"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Stops listening; arrivals in progress finish.
    public func close() {
        guard
            !self.closed.withLockedValue({ closed in
                defer { closed = true }
                return closed
            })
        else { return }
        shutdown(self.fd, Int32(SHUT_RDWR))
        Glibc.close(self.fd)
    }
}
