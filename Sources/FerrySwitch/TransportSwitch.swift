import CFerryLinux
import FerryEndpoints
import FerryPosix
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The transport-layer switch (`ferry switch --mode l4`): accepts TCP connections, picks a
/// backend with its ``Balancer``, and relays bytes both ways until both sides are done.
///
/// The bytes never enter user space: each direction moves socket → pipe → socket with
/// `splice(2)`. Each of the switch's threads runs its own epoll loop (edge-triggered) over
/// the shared listening socket (`EPOLLEXCLUSIVE`, so one thread wakes per connection) and the
/// connections it accepted. A connect that fails is retried on the next backend, and the
/// failed backend leaves rotation until a health check finds it again.
public final class TransportSwitch: Sendable {
    public let balancer: Balancer
    /// Where it listens, once started.
    public let address: ServiceEndpoint
    private let listener: SwitchListener
    private let loops: [RelayLoop]
    private let backends: SwitchBackends
    private let logger: Logger

    /// Binds `listen` (port 0 for any) and starts `threads` relay threads.
    public init(
        listen listener: SwitchListener,
        backends: [BackendSpec],
        policy: BalancePolicy = .roundRobin,
        maxConnectionsPerBackend: Int? = nil,
        healthCheck: HealthCheck = .tcp,
        healthCheckInterval: Duration? = .seconds(2),  // nil: only checkHealthNow()
        slowStart: Duration? = nil,
        threads: Int = 2,
        logger: Logger = Logger(label: "ferry.switch")
    ) throws {
        self.logger = logger
        let backends = try SwitchBackends(
            backends,
            policy: policy,
            maxConnections: maxConnectionsPerBackend,
            slowStart: slowStart,
            healthCheck: healthCheck,
            healthCheckInterval: healthCheckInterval,
            logger: logger
        )
        self.backends = backends
        self.balancer = backends.balancer
        self.listener = listener
        self.address = listener.address
        self.loops = try (0..<max(1, threads)).map { index in
            try RelayLoop(
                index: index,
                listener: listener.fd,
                balancer: backends.balancer,
                addresses: backends.addresses,
                logger: logger
            )
        }
        try backends.start(self.loops)
    }

    /// Runs every backend's health check now, instead of at the next interval.
    public func checkHealthNow() {
        self.backends.healthChecker.checkAll()
    }

    /// Stops accepting and closes every relayed connection.
    public func stop() { self.backends.stop(self.loops) }

    /// Stops accepting; each relay runs until its connection ends, then the threads end.
    public func retire() { self.backends.retire(self.loops) }
}

public enum SwitchError: Error, Equatable, CustomStringConvertible {
    case cannotResolve(String, String)
    case cannotListen(String, String)
    case handoffNeedsUnixBackend(String)
    case unknownGroup(String)
    case handoffChecksConnectOnly
    case system(String)

    public var description: String {
        switch self {
        case .cannotResolve(let endpoint, let reason): "cannot resolve \(endpoint): \(reason)"
        case .cannotListen(let endpoint, let reason): "cannot listen on \(endpoint): \(reason)"
        case .handoffNeedsUnixBackend(let backend):
            "handoff passes connections to backends on this host: give each as unix:PATH (the server's --handoff-socket), not \(backend)"
        case .unknownGroup(let route):
            "the route '\(route)' names a group no backend is in; give backends as GROUP=HOST:PORT"
        case .handoffChecksConnectOnly:
            "a handoff backend's socket takes connections, not requests: use --health-check tcp with --mode handoff"
        case .system(let reason): reason
        }
    }
}

/// One relay thread: its connections, on an epoll loop of their own.
final class RelayLoop: SwitchLoop, @unchecked Sendable {
    // Sendable: everything mutable is touched only by this loop's thread, after `start`.
    private let thread: SwitchThread
    private let balancer: Balancer
    private let addresses: [SocketAddress]
    private let logger: Logger
    private var relays: [CInt: Relay] = [:]
    /// Where small messages pass through on their way, one for the loop's thread.
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Relay.smallRead, alignment: 16)

    init(index: Int, listener: CInt, balancer: Balancer, addresses: [SocketAddress], logger: Logger) throws {
        self.thread = try SwitchThread(name: "ferry-switch-\(index)", listener: listener)
        self.balancer = balancer
        self.addresses = addresses
        self.logger = logger
    }

    func start() throws {
        try self.thread.start(
            onListener: { self.acceptAll() },
            onEvent: { fd, events in
                if let relay = self.relays[fd] { self.step(relay, readyFD: fd, events: events) }
            },
            onStop: {
                // Each relay is listed under both its descriptors: finish each once.
                var finished = Set<ObjectIdentifier>()
                for relay in Array(self.relays.values) where finished.insert(ObjectIdentifier(relay)).inserted {
                    self.finish(relay)
                }
            }
        )
    }

    func stop() { self.thread.stop() }

    func retire() { self.thread.retire { self.relays.isEmpty } }

    deinit { self.scratch.deallocate() }

    private func acceptAll() {
        while let client = BoundSocket.accept(
            on: self.thread.listener,
            failed: { self.logger.warning("switch: \($0)") }
        ) {
            self.connect(Relay(client: client, clientAddress: PeerAddress.peer(of: client)?.bytes ?? []))
        }
    }

    /// Starts a connect to the next backend the balancer picks, or gives the client up.
    private func connect(_ relay: Relay) {
        while let backend = self.balancer.pick(client: relay.clientAddress, excluding: relay.tried) {
            relay.tried.insert(backend)
            let fd = self.addresses[backend].withSockAddr { pointer, length in
                ferry_connect_nonblocking(pointer, socklen_t(length))
            }
            guard fd >= 0 else {
                self.backendFailed(backend, reason: String(cString: strerror(errno)))
                continue
            }
            relay.backend = backend
            relay.backendFD = fd
            self.relays[fd] = relay
            do {
                try self.watch(fd, EPOLLOUT.rawValue | EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue)
            } catch {
                self.finish(relay)
            }
            return
        }
        self.logger.warning("switch: no backend could take a connection; closing it")
        self.finish(relay)
    }

    private func backendFailed(_ backend: Int, reason: String) {
        self.balancer.release(backend)
        self.balancer.connectFailed(backend)
        self.logger.warning(
            "switch: connect to backend \(self.balancer.spec(backend).address) failed (\(reason)); out of rotation until a health check passes"
        )
    }

    private func step(_ relay: Relay, readyFD: CInt, events: UInt32) {
        if !relay.connected {
            guard readyFD == relay.backendFD, let backend = relay.backend else { return }
            let error = ferry_socket_error(relay.backendFD)
            if error == EINPROGRESS || error == EALREADY { return }
            if error != 0 {
                // Try the next backend with the same client.
                self.relays[relay.backendFD] = nil
                close(relay.backendFD)
                relay.backendFD = -1
                relay.backend = nil
                self.backendFailed(backend, reason: String(cString: strerror(error)))
                self.connect(relay)
                return
            }
            do {
                try relay.openPipes()
                relay.connected = true
                self.relays[relay.client] = relay
                try self.watch(
                    relay.client,
                    EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
                )
            } catch {
                self.finish(relay)
                return
            }
            self.pump(relay, upstream: true, downstream: true)
            return
        }
        // Only the directions this event can move: readable feeds the direction it is the
        // source of, writable drains the one it is the destination of.
        let readable = events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
        let writable = events & (EPOLLOUT.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
        let isClient = readyFD == relay.client
        // Writable matters only to a direction with bytes waiting in its pipe.
        self.pump(
            relay,
            upstream: isClient ? readable : writable && relay.toBackend.buffered > 0,
            downstream: isClient ? writable && relay.toClient.buffered > 0 : readable
        )
    }

    private func pump(_ relay: Relay, upstream: Bool, downstream: Bool) {
        let upstreamOK =
            !upstream
            || relay.pump(&relay.toBackend, from: relay.client, to: relay.backendFD, scratch: self.scratch)
        let downstreamOK =
            !downstream
            || relay.pump(&relay.toClient, from: relay.backendFD, to: relay.client, scratch: self.scratch)
        if !upstreamOK || !downstreamOK || (relay.toBackend.closed && relay.toClient.closed) {
            self.finish(relay)
        }
    }

    private func finish(_ relay: Relay) {
        self.relays[relay.client] = nil
        if relay.backendFD >= 0 { self.relays[relay.backendFD] = nil }
        if let backend = relay.backend { self.balancer.release(backend) }
        relay.close()
    }

    private func watch(_ fd: CInt, _ events: UInt32) throws {
        try self.thread.watch(fd, events)
    }
}

/// One client connection and its backend connection.
final class Relay {
    /// One direction: socket → pipe → socket.
    struct Direction {
        var pipeRead: CInt = -1
        var pipeWrite: CInt = -1
        /// Bytes in the pipe, read from the source and not yet written on.
        var buffered = 0
        /// The source has ended.
        var ended = false
        /// Its end was passed on (shutdown of the destination's writing side).
        var closed = false
        /// Read into user space and not yet written on (small messages go that way).
        var pending: [UInt8] = []
        /// This direction carries bulk data: it moves by splice from now on.
        var bulk = false

    }

    /// A read of this size or less goes through user space: one read and one write cost less
    /// than four splices (in, out, and an EAGAIN each way). A full read marks the direction bulk.
    static let smallRead = 16 << 10

    /// Bytes asked of a source at a time: a pipe's default capacity.
    static let chunk = 1 << 16

    let client: CInt
    let clientAddress: [UInt8]
    var backendFD: CInt = -1
    var backend: Int?
    var tried: Set<Int> = []
    var connected = false
    var toBackend = Direction()
    var toClient = Direction()

    init(client: CInt, clientAddress: [UInt8]) {
        self.client = client
        self.clientAddress = clientAddress
    }

    func openPipes() throws {
        for keyPath in [\Relay.toBackend, \Relay.toClient] {
            var fds: [CInt] = [-1, -1]
            guard ferry_pipe_nonblocking(&fds) == 0 else {
                throw SwitchError.system("pipe: \(String(cString: strerror(errno)))")
            }
            self[keyPath: keyPath].pipeRead = fds[0]
            self[keyPath: keyPath].pipeWrite = fds[1]
        }
    }

    /// Moves what it can from `source` to `destination`; false on an error that ends the relay.
    ///
    /// Small messages go through `scratch` (read, then write); once a read fills it, the
    /// direction is bulk and moves by splice. Reads go on until EAGAIN even after a short one:
    /// splice fills a pipe buffer per socket fragment, so a short count does not mean the socket
    /// is empty, and edge-triggered epoll would not say so again.
    func pump(
        _ direction: inout Direction,
        from source: CInt,
        to destination: CInt,
        scratch: UnsafeMutableRawBufferPointer
    ) -> Bool {
        while true {
            if !direction.pending.isEmpty {
                let written = direction.pending.withUnsafeBytes { write(destination, $0.baseAddress, $0.count) }
                if written > 0 {
                    direction.pending.removeFirst(written)
                    continue
                }
                return written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
            }
            if direction.buffered > 0 {
                let moved = ferry_splice(direction.pipeRead, destination, direction.buffered)
                if moved > 0 {
                    direction.buffered -= moved
                    continue
                }
                return moved < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
            }
            if direction.ended {
                if !direction.closed {
                    shutdown(destination, CInt(SHUT_WR))
                    direction.closed = true
                }
                return true
            }
            let moved =
                direction.bulk
                ? ferry_splice(source, direction.pipeWrite, Self.chunk)
                : read(source, scratch.baseAddress, min(scratch.count, Self.smallRead))
            if moved > 0 {
                if direction.bulk {
                    direction.buffered += moved
                    continue
                }
                if moved == min(scratch.count, Self.smallRead) { direction.bulk = true }
                let written = write(destination, scratch.baseAddress, moved)
                if written < 0, errno != EAGAIN, errno != EWOULDBLOCK { return false }
                let done = max(written, 0)
                if done < moved {
                    direction.pending = Array(UnsafeRawBufferPointer(rebasing: scratch[done..<moved]))
                }
            } else if moved == 0 {
                direction.ended = true
            } else {
                return errno == EAGAIN || errno == EWOULDBLOCK
            }
        }
    }

    func close() {
        for fd in [
            self.client, self.backendFD, self.toBackend.pipeRead, self.toBackend.pipeWrite, self.toClient.pipeRead,
            self.toClient.pipeWrite,
        ]
        where fd >= 0 {
            Glibc.close(fd)
        }
    }
}
