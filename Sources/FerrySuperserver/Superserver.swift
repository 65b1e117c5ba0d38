import CFerryLinux
import FerryConfiguration
import FerryEndpoints
import FerryPosix
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// The superserver (the seed's inetd): one process listens on every configured endpoint and
/// starts the service behind it only when a client arrives.
///
/// One activator thread polls every listening socket and every running child (through its pidfd).
/// A `nowait` service gets a new process per connection with the connection as its standard
/// input, output and error; a `wait` service's process gets the listening socket itself and the
/// superserver stops watching it until that process exits; `builtin` services (echo, discard,
/// daytime, chargen) are served in process. Each service is registered at the endpoint daemon.
/// A reload (SIGHUP) keeps the socket of every service whose protocol and address did not change,
/// so no established connection is dropped; a bad configuration is refused and the running one
/// stays.
public final class Superserver: Service, Sendable {
    /// A bound service, as the superserver announces it.
    public struct Bound: Sendable, Equatable {
        public let name: String
        public let transport: SuperserverConfiguration.TransportProtocol
        public let address: ServiceEndpoint
    }

    final class Listener: @unchecked Sendable {
        // Guarded by the superserver's lock.
        var service: SuperserverConfiguration.Service
        let fd: Int32
        let address: ServiceEndpoint
        var instances = 0
        /// The pid of the `wait` process that holds the socket now.
        var lentTo: Int32?
        var buckets: [String: (tokens: Double, last: ContinuousClock.Instant)] = [:]

        init(service: SuperserverConfiguration.Service, fd: Int32, address: ServiceEndpoint) {
            self.service = service
            self.fd = fd
            self.address = address
        }
    }

    enum Watched {
        case listener(Listener)
        case child
    }

    struct Child {
        let pid: Int32
        let listener: Listener
    }

    struct State {
        var configuration: SuperserverConfiguration
        var listeners: [String: Listener] = [:]
        var children: [Int32: Child] = [:]  // by pidfd
        var retired: [Int32] = []  // listening sockets to close on the activator thread
        var running = true
        var registrations: [String: Task<Void, Never>] = [:]
    }

    private let state: NIOLockedValueBox<State>
    private let loop: WakeableLoop
    /// What the activator watches, by descriptor: a listening socket, or a child's pidfd.
    private let watched = NIOLockedValueBox<[Int32: Watched]>([:])
    private let logger: Logger
    private let hangups = NIOLockedValueBox<HangupReload?>(nil)

    /// Every bound service, in configuration order.
    public var bound: [Bound] {
        self.state.withLockedValue { state in
            state.configuration.services.compactMap { service in
                state.listeners[service.socketKey].map {
                    Bound(name: $0.service.name, transport: $0.service.transport, address: $0.address)
                }
            }
        }
    }

    /// Binds every service's socket and starts serving them.
    public init(
        configuration: SuperserverConfiguration,
        logger: Logger = Logger(label: "ferry.superserver")
    ) throws {
        self.logger = logger
        self.loop = try WakeableLoop(name: "ferry-superserver")
        var listeners: [String: Listener] = [:]
        do {
            for service in configuration.services {
                listeners[service.socketKey] = try Self.bind(service)
            }
        } catch {
            for listener in listeners.values { close(listener.fd) }
            throw error
        }
        self.state = NIOLockedValueBox(State(configuration: configuration, listeners: listeners))
        self.updateRegistrations()
        try self.loop.start(
            WakeableLoop.Policy(
                onStart: { [self] in self.syncWatched() },
                onReady: { [self] fd, _ in self.ready(fd) },
                afterEvents: { [self] in self.syncWatched() },
                onStop: { [self] _ in self.closeListeners() }
            )
        )
    }

    /// Makes SIGHUP reload `path` from now on (a SIGHUP before ``run()`` is handled once it runs).
    /// Call it before telling anyone the superserver is up: until then SIGHUP would end the process.
    public func reloadOnHangup(from path: String) async {
        let hangups = await HangupReload(path: path)
        self.hangups.withLockedValue { $0 = hangups }
    }

    /// Serves until graceful shutdown, reloading on SIGHUP if asked to.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            if let hangups = self.hangups.withLockedValue({ $0 }) {
                group.addTask {
                    await hangups.run(logger: self.logger) { try self.reload(SuperserverConfiguration.load(path: $0)) }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        self.stop()
    }

    /// Stops listening. Processes already started run on; their connections are theirs.
    public func stop() {
        let registrations = self.state.withLockedValue { state in
            state.running = false
            defer { state.registrations = [:] }
            return Array(state.registrations.values)
        }
        for task in registrations { task.cancel() }
        self.loop.retire(whenIdle: { true })
    }

    /// Replaces the configuration. Services whose protocol and address are unchanged keep their
    /// socket (and every connection on it); new ones are bound before anything changes, so a
    /// socket that cannot be bound leaves the running configuration as it was.
    public func reload(_ configuration: SuperserverConfiguration) throws {
        let existing = self.state.withLockedValue { $0.listeners }
        var added: [String: Listener] = [:]
        do {
            for service in configuration.services where Self.kept(for: service, in: existing) == nil {
                added[service.socketKey] = try Self.bind(service)
            }
        } catch {
            for listener in added.values { close(listener.fd) }
            throw error
        }
        self.state.withLockedValue { state in
            var listeners: [String: Listener] = [:]
            for service in configuration.services {
                if let kept = Self.kept(for: service, in: state.listeners) {
                    kept.service = service
                    listeners[service.socketKey] = kept
                } else {
                    listeners[service.socketKey] = added[service.socketKey]
                }
            }
            let keptSockets = Set(listeners.values.map(\.fd))
            for listener in state.listeners.values where !keptSockets.contains(listener.fd) {
                state.retired.append(listener.fd)
            }
            state.listeners = listeners
            state.configuration = configuration
        }
        self.updateRegistrations()
        self.loop.wake()
        self.logger.info(
            "reloaded: \(configuration.services.count) services, \(added.count) newly bound; established connections kept"
        )
    }

    /// The socket a reloaded service keeps: the one with its key, or the one already bound to the
    /// address it names (a service first given port 0 and then its bound port keeps its socket).
    private static func kept(
        for service: SuperserverConfiguration.Service,
        in listeners: [String: Listener]
    ) -> Listener? {
        listeners[service.socketKey]
            ?? listeners.values.first {
                service.listen.port != 0 && $0.service.transport == service.transport && $0.address == service.listen
            }
    }

    // MARK: - Sockets

    private static func bind(_ service: SuperserverConfiguration.Service) throws -> Listener {
        do {
            let (fd, bound) = try BoundSocket.open(
                host: service.listen.host,
                port: service.listen.port,
                datagram: service.transport == .udp
            )
            return Listener(
                service: service,
                fd: fd,
                address: ServiceEndpoint(host: service.listen.host, port: bound.port)
            )
        } catch {
            throw SuperserverError.cannotBind(service: service.name, address: "\(service.listen)", reason: error.reason)
        }
    }

    // MARK: - The activator thread

    /// Watches what should be watched now: every listening socket not lent to a `wait` process
    /// and every running child; then closes the sockets a reload retired.
    private func syncWatched() {
        let (wanted, retired) = self.state.withLockedValue { state -> ([Int32: Watched], [Int32]) in
            defer { state.retired = [] }
            var wanted: [Int32: Watched] = [:]
            guard state.running else { return (wanted, state.retired) }
            for listener in state.listeners.values where listener.lentTo == nil {
                wanted[listener.fd] = .listener(listener)
            }
            for pidfd in state.children.keys { wanted[pidfd] = .child }
            return (wanted, state.retired)
        }
        self.watched.withLockedValue { watched in
            for fd in watched.keys where wanted[fd] == nil { self.loop.unwatch(fd) }
            for fd in wanted.keys where watched[fd] == nil {
                do {
                    try self.loop.watch(fd)
                } catch {
                    self.logger.error("the superserver cannot watch a socket: \(error)")
                }
            }
            watched = wanted
        }
        for fd in retired { close(fd) }
    }

    private func ready(_ fd: Int32) {
        switch self.watched.withLockedValue({ $0[fd] }) {
        case .listener(let listener): self.serve(listener)
        case .child: self.reap(fd)
        case nil: break
        }
    }

    /// At the end: no socket stays open. Processes already started run on.
    private func closeListeners() {
        self.state.withLockedValue { state in
            for listener in state.listeners.values { close(listener.fd) }
            for fd in state.retired { close(fd) }
            state.listeners = [:]
            state.retired = []
        }
    }

    private func serve(_ listener: Listener) {
        let service = self.state.withLockedValue { _ in listener.service }
        switch (service.transport, service.mode) {
        case (_, .wait):
            self.start(service, listener: listener, socket: listener.fd, remote: nil)
        case (.tcp, _):
            var storage = sockaddr_storage()
            let connection = ferry_accept_blocking(listener.fd, &storage)
            guard connection >= 0 else { return }
            let remote = PeerAddress(storage)?.host ?? "unknown"
            guard self.admit(listener, from: remote) else {
                close(connection)
                return
            }
            if service.mode == .builtin {
                self.serveBuiltin(service, connection: connection, listener: listener)
            } else {
                self.start(service, listener: listener, socket: connection, remote: remote)
                close(connection)
            }
        case (.udp, _):
            self.answerDatagram(service, listener: listener)
        }
    }

    /// Applies the per-source rate and the instance limit; counts an instance when admitted.
    private func admit(_ listener: Listener, from remote: String) -> Bool {
        let refusal: String? = self.state.withLockedValue { _ in
            let service = listener.service
            if service.perSourceRate > 0 {
                let now = ContinuousClock.now
                let rate = Double(service.perSourceRate)
                var bucket = listener.buckets[remote] ?? (tokens: rate, last: now)
                let seconds = (now - bucket.last).inSeconds
                bucket = (tokens: min(rate, bucket.tokens + seconds * rate), last: now)
                if listener.buckets.count > 10_000 { listener.buckets = [:] }
                guard bucket.tokens >= 1 else {
                    listener.buckets[remote] = bucket
                    return "more than \(service.perSourceRate) connections per second from \(remote) (per_source_rate)"
                }
                bucket.tokens -= 1
                listener.buckets[remote] = bucket
            }
            guard listener.instances < service.maxInstances else {
                return "\(service.maxInstances) instances already running (max_instances)"
            }
            listener.instances += 1
            return nil
        }
        if let refusal {
            self.logger.warning("refused a connection to \(listener.service.name) from \(remote): \(refusal)")
            return false
        }
        return true
    }

    private func release(_ listener: Listener) {
        self.state.withLockedValue { _ in listener.instances -= 1 }
    }

    /// The `ferry` executable this superserver runs as, which starts a service's containers.
    static let ferryExecutable: String =
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]

    /// Starts the service's program on `socket`.
    private func start(_ service: SuperserverConfiguration.Service, listener: Listener, socket: Int32, remote: String?)
    {
        guard let program = service.program else { return }
        var uid: Int32 = -1
        var gid: Int32 = -1
        if let user = service.user, let entry = getpwnam(user) {
            uid = Int32(bitPattern: entry.pointee.pw_uid)
            gid = Int32(bitPattern: entry.pointee.pw_gid)
        }
        var environment = ["PATH": "/usr/local/bin:/usr/bin:/bin", "FERRY_SERVICE": service.name]
        if let remote { environment["REMOTE_ADDR"] = remote }
        environment.merge(service.environment) { _, configured in configured }
        var argv = [URL(fileURLWithPath: program).lastPathComponent] + service.args
        var envp = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        var executable = program
        if let container = service.container {
            // `ferry container run` (this very executable) starts the program in the container,
            // the connection as its standard input, output and error; the user applies inside.
            executable = Self.ferryExecutable
            let user = uid == -1 ? [] : ["--user", "\(uid):\(gid)"]
            argv =
                ["ferry", "container", "run", "--quiet"] + container.flags + user
                + envp.flatMap { ["--env", $0] } + ["--", program] + service.args
            envp = ["PATH=/usr/local/bin:/usr/bin:/bin"]
            uid = -1
            gid = -1
        }
        var pid: Int32 = 0
        let pidfd = withCStrings(argv) { argv in
            withCStrings(envp) { envp in ferry_spawn(executable, argv, envp, socket, uid, gid, &pid) }
        }
        guard pidfd >= 0 else {
            let reason = String(cString: strerror(errno))
            self.logger.error("cannot start \(program) for \(service.name): \(reason)")
            if service.mode != .wait { self.release(listener) }
            return
        }
        self.state.withLockedValue { state in
            state.children[pidfd] = Child(pid: pid, listener: listener)
            if service.mode == .wait {
                listener.lentTo = pid
                listener.instances += 1
            }
        }
        self.logger.debug("started \(program) (pid \(pid)) for \(service.name)\(remote.map { " from \($0)" } ?? "")")
    }

    private func reap(_ pidfd: Int32) {
        guard let child = self.state.withLockedValue({ $0.children.removeValue(forKey: pidfd) }) else { return }
        let status = ferry_reap(child.pid)
        // Unwatched before it is closed: its number may come back as another descriptor.
        self.loop.unwatch(pidfd)
        self.watched.withLockedValue { _ = $0.removeValue(forKey: pidfd) }
        close(pidfd)
        self.state.withLockedValue { _ in
            child.listener.instances -= 1
            if child.listener.lentTo == child.pid { child.listener.lentTo = nil }
        }
        if status != 0 {
            self.logger.info("\(child.listener.service.name): pid \(child.pid) exited with status \(status >> 8)")
        }
    }

    // MARK: - Builtins

    private func serveBuiltin(_ service: SuperserverConfiguration.Service, connection: Int32, listener: Listener) {
        let builtin = service.builtin ?? .echo
        do {
            try KernelThread.detach(name: "ferry-\(builtin.rawValue)") { [self] in
                Self.runBuiltin(builtin, connection: connection)
                close(connection)
                self.release(listener)
            }
        } catch {
            self.logger.warning("refused a connection to \(service.name): \(error)")
            close(connection)
            self.release(listener)
        }
    }

    /// One TCP connection of a builtin service, on its own thread (RFC 862, 863, 867, 864).
    static func runBuiltin(_ builtin: SuperserverConfiguration.Builtin, connection: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        switch builtin {
        case .echo:
            while true {
                let count = read(connection, &buffer, buffer.count)
                guard count > 0, sendAll(connection, buffer[0..<count]) else { return }
            }
        case .discard:
            while read(connection, &buffer, buffer.count) > 0 {}
        case .daytime:
            _ = sendAll(connection, Array(Self.daytime().utf8)[...])
        case .chargen:
            var offset = 0
            while true {
                var block: [UInt8] = []
                for _ in 0..<100 {
                    block += Self.chargenLine(offset)
                    offset += 1
                }
                guard sendAll(connection, block[...]) else { return }
            }
        }
    }

    private func answerDatagram(_ service: SuperserverConfiguration.Service, listener: Listener) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let count = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                recvfrom(listener.fd, &buffer, buffer.count, Int32(MSG_DONTWAIT), $0, &length)
            }
        }
        guard count >= 0 else { return }
        let remote = PeerAddress(storage)?.host ?? "unknown"
        // The rate limit matters most here: a forged source turns chargen and echo into amplifiers.
        guard self.admit(listener, from: remote) else { return }
        defer { self.release(listener) }
        let reply: [UInt8]
        switch service.builtin ?? .echo {
        case .echo: reply = Array(buffer[0..<count])
        case .discard: return
        case .daytime: reply = Array(Self.daytime().utf8)
        case .chargen: reply = Array(Self.chargenLine(Int.random(in: 0..<95)).prefix(Int.random(in: 1...74)))
        }
        _ = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                reply.withUnsafeBytes {
                    sendto(listener.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT), address, length)
                }
            }
        }
    }

    static func daytime() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEEE, MMMM d, yyyy HH:mm:ss-zzz"
        return formatter.string(from: Date()) + "\r\n"
    }

    /// Line `n` of chargen: 72 printable characters rotating by one each line, then CR LF.
    static func chargenLine(_ n: Int) -> [UInt8] {
        (0..<72).map { UInt8(32 + (n + $0) % 95) } + [13, 10]
    }

    // MARK: - Registration

    private func updateRegistrations() {
        self.state.withLockedValue { state in
            guard state.running, let daemon = state.configuration.endpoints else { return }
            var wanted: [String: LeasedRegistration] = [:]
            for listener in state.listeners.values {
                let service = listener.service
                let key = "\(service.name) \(listener.address)"
                guard state.registrations[key] == nil else { continue }
                wanted[key] = LeasedRegistration(
                    name: service.name,
                    endpoints: [listener.address],
                    metadata: [
                        "protocol": service.transport.rawValue, "mode": service.mode.rawValue, "via": "superserver",
                    ],
                    registry: daemon,
                    logger: self.logger
                )
            }
            let current = Set(state.listeners.values.map { "\($0.service.name) \($0.address)" })
            for (key, task) in state.registrations where !current.contains(key) {
                task.cancel()
                state.registrations[key] = nil
            }
            for (key, registration) in wanted {
                state.registrations[key] = Task { try? await registration.run() }
            }
        }
    }
}

/// Why the superserver could not start a service.
public enum SuperserverError: Error, CustomStringConvertible {
    case cannotBind(service: String, address: String, reason: String)

    public var description: String {
        switch self {
        case .cannotBind(let service, let address, let reason):
            "cannot listen on \(address) for service '\(service)': \(reason); is something else using that port?"
        }
    }
}

private func sendAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
    var rest = bytes
    while !rest.isEmpty {
        let sent = rest.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if sent < 0 && errno == EINTR { continue }
        guard sent > 0 else { return false }
        rest = rest.dropFirst(sent)
    }
    return true
}

#if canImport(Glibc)
import Glibc
#endif
