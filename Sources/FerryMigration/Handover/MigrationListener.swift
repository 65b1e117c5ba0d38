import CFerryLinux
import FerryEndpoints
import FerryPosix
import FerryWire
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
    private let loop: WakeableLoop
    private let closed = NIOLockedValueBox(false)

    /// Listens on `endpoint` (port 0 picks one) and hands each connection to `host`.
    public init(_ endpoint: ServiceEndpoint, host: ProcessHost) throws {
        let (fd, bound) = try BoundSocket.open(host: endpoint.host, port: endpoint.port, nonblocking: true)
        self.fd = fd
        let endpoint = ServiceEndpoint(host: endpoint.host, port: bound.port)
        self.endpoint = endpoint
        host.migrationEndpoint.withLockedValue { $0 = endpoint }
        do {
            self.loop = try WakeableLoop(name: "ferry-migration")
            try self.loop.watch(fd)
        } catch {
            Glibc.close(fd)
            throw error
        }
        try self.loop.start(
            WakeableLoop.Policy(
                onReady: { [self] _, _ in self.acceptWaiting(host) },
                onStop: { [self] _ in Glibc.close(self.fd) }
            )
        )
    }

    /// Each waiting connection, as a blocking socket on a thread of its own.
    private func acceptWaiting(_ host: ProcessHost) {
        while true {
            var address = sockaddr_storage()
            let client = ferry_accept_blocking(self.fd, &address)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno != EAGAIN, errno != EWOULDBLOCK {
                    host.logger.error(
                        "the migration port \(self.endpoint) cannot accept: \(String(cString: strerror(errno)))"
                    )
                }
                return
            }
            let peer = PeerAddress(address)?.description ?? "?"
            do {
                try KernelThread.detach(name: "ferry-arrival") { Self.arrive(client, from: peer, at: host) }
            } catch {
                host.logger.error("cannot take a process from \(peer): \(error)")
                Glibc.close(client)
            }
        }
    }

    /// One connection, on its own thread: after the TLS handshake when this node has the
    /// cluster's credentials, which refuses a peer that is not a member in one log line.
    private static func arrive(_ client: Int32, from peer: String, at host: ProcessHost) {
        let socket: MigrationSocket
        do {
            socket = try MigrationSocket(
                fd: client,
                peer: peer,
                timeout: Handover.timeout,
                credentials: WireSecurity.credentials,
                isServer: true
            )
        } catch {
            host.logger.warning(
                "refused migration peer \(peer): \(error); a member needs a certificate from this cluster's authority ('ferry ca issue NAME')"
            )
            return
        }
        host.arrive(socket)
    }

    /// Stops listening; arrivals in progress finish.
    public func close() {
        guard
            !self.closed.withLockedValue({ closed in
                defer { closed = true }
                return closed
            })
        else { return }
        self.loop.stop()
    }
}
