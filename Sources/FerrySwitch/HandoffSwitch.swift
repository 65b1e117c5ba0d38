import CFerryLinux
import FerryEndpoints
import FerryPosix
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The TCP-handoff switch (`ferry switch --mode handoff`): it accepts a client's connection and
/// passes the accepted socket itself to a backend process on this host over a Unix socket
/// (SCM_RIGHTS). The backend answers the client directly, so the switch carries no bytes: its
/// work per connection is one accept and one sendmsg, whatever the connection then moves.
///
/// Backends are `unix:PATH` sockets on which a Ferry server takes handoffs
/// (`ferry serve files --handoff-socket PATH`). Since a handed-off connection is no longer the
/// switch's to see, the balancer counts it open only for the moment of the handoff: least
/// connections and per-backend limits have nothing to count here, and act as round robin.
public final class HandoffSwitch: Sendable {
    public let balancer: Balancer
    public let address: ServiceEndpoint
    private let listener: SwitchListener
    private let loop: WakeableLoop
    private let channels: [HandoffChannel]
    private let backends: SwitchBackends
    private let logger: Logger
    private let stopping = NIOLockedValueBox(false)

    public init(
        listen listener: SwitchListener,
        backends: [BackendSpec],
        policy: BalancePolicy = .roundRobin,
        healthCheck: HealthCheck = .tcp,
        healthCheckInterval: Duration? = .seconds(2),
        slowStart: Duration? = nil,
        logger: Logger = Logger(label: "ferry.switch")
    ) throws {
        // A handoff socket takes descriptors, not requests: only a connect can check it.
        guard healthCheck == .tcp else { throw SwitchError.handoffChecksConnectOnly }
        let paths = try backends.map { backend in
            guard case .unix(let path) = backend.address else {
                throw SwitchError.handoffNeedsUnixBackend(backend.address.description)
            }
            return path
        }
        self.logger = logger
        let backends = try SwitchBackends(
            backends,
            policy: policy,
            maxConnections: nil,
            slowStart: slowStart,
            healthCheck: healthCheck,
            healthCheckInterval: healthCheckInterval,
            logger: logger
        )
        self.backends = backends
        self.balancer = backends.balancer
        self.channels = paths.map(HandoffChannel.init)
        self.listener = listener
        self.address = listener.address
        self.loop = try WakeableLoop(name: "ferry-switch-handoff")
        try self.loop.watch(listener.fd)
        try self.loop.start(
            WakeableLoop.Policy(onReady: { [self] _, _ in
                while let client = BoundSocket.accept(
                    on: self.listener.fd,
                    failed: { self.logger.warning("switch: \($0)") }
                ) {
                    self.handOff(client)
                }
            })
        )
        try backends.startChecks()
    }

    public func checkHealthNow() {
        self.backends.healthChecker.checkAll()
    }

    /// Connections already handed over belong to their backends: retiring is stopping.
    public func retire() { self.stop() }

    /// Stops accepting. Connections already handed over belong to their backends and stay.
    public func stop() {
        guard
            !self.stopping.withLockedValue({ stopping in
                defer { stopping = true }
                return stopping
            })
        else { return }
        self.backends.healthChecker.stop()
        self.loop.stop()
        for channel in self.channels { channel.close() }
    }

    /// Passes `client` to the next backend that takes it; the switch's copy is closed either way.
    private func handOff(_ client: CInt) {
        defer { close(client) }
        var tried = Set<Int>()
        while let backend = self.balancer.pick(client: [], excluding: tried) {
            tried.insert(backend)
            self.balancer.release(backend)
            do {
                try self.channels[backend].send(client)
                return
            } catch {
                self.balancer.connectFailed(backend)
                self.logger.warning(
                    "switch: handoff to backend \(self.balancer.spec(backend).address) failed (\(error.reason)); out of rotation until a health check passes"
                )
            }
        }
        self.logger.warning("switch: no backend could take a connection; closing it")
    }
}

/// The Unix socket to one backend, over which accepted connections are passed; connected on
/// first use and again after a failure.
final class HandoffChannel: Sendable {
    struct Failure: Error {
        let reason: String
    }

    let path: String
    private let socket = NIOLockedValueBox<CInt>(-1)

    init(path: String) {
        self.path = path
    }

    func send(_ descriptor: CInt) throws(Failure) {
        let failure: String? = self.socket.withLockedValue { socket in
            for attempt in 0..<2 {
                if socket < 0 {
                    socket = ferry_unix_connect(self.path)
                    if socket < 0 { return String(cString: strerror(errno)) }
                }
                if ferry_send_descriptor(socket, descriptor) == 0 { return nil }
                let reason = String(cString: strerror(errno))
                Glibc.close(socket)
                socket = -1
                // A backend that restarted left a dead channel behind: reconnect once.
                if attempt == 1 { return reason }
            }
            return nil
        }
        if let failure { throw Failure(reason: failure) }
    }

    func close() {
        self.socket.withLockedValue { socket in
            if socket >= 0 { Glibc.close(socket) }
            socket = -1
        }
    }
}
