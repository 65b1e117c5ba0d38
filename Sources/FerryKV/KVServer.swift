import FerryPosix
import FerryWire
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// The stateful key-value service: a ``KVStorage`` (a SQLite file, or PostgreSQL) behind a
/// FerryWire port, served by Ferry's own epoll loops (``KVLoop``) as Redis serves its clients:
/// gets of a local file are answered on the loop that read them, and a loop commits the writes it
/// read itself, so its gets wait while it syncs the log, as Redis's do. With cluster credentials
/// every connection speaks TLS, on the same loops.
public final class KVServer: Service, Sendable {
    public let store: any KVStorage
    public let host: String
    public let port: Int
    /// Nil once closed.
    private let loops: NIOLockedValueBox<[KVLoop]?>

    private init(store: any KVStorage, loops: [KVLoop], host: String, port: Int) {
        self.store = store
        self.loops = NIOLockedValueBox(loops)
        self.host = host
        self.port = port
    }

    /// Opens the SQLite store at `path` and binds the service's port.
    public static func bind(
        path: String,
        host: String = "127.0.0.1",
        port: Int = 0,
        logger: Logger = Logger(label: "ferry.kv")
    ) async throws -> KVServer {
        try await Self.bind(store: try KVStore(path: path), host: host, port: port, logger: logger)
    }

    /// Binds the service's port in front of `store`: over TLS with `credentials` (by default
    /// this process's, ``WireSecurity``), plain without, on `loops` event loops
    /// (``defaultLoops`` when nil), which poll for `idlePoll` before sleeping while requests come
    /// closer together than that (``defaultIdlePoll``; zero: never).
    public static func bind(
        store: any KVStorage,
        host: String = "127.0.0.1",
        port: Int = 0,
        loops: Int? = nil,
        idlePoll: Duration = KVServer.defaultIdlePoll,
        credentials: ClusterCredentials? = WireSecurity.credentials,
        logger: Logger = Logger(label: "ferry.kv")
    ) async throws -> KVServer {
        if credentials == nil {
            logger.debug(
                "the kv service on \(hostAndPort(host, port)) takes peers without credentials (none were found)"
            )
        }
        let listener = try TCPListener(host: host, port: port)
        let loops = try (0..<max(1, loops ?? Self.defaultLoops)).map { index throws(PosixError) in
            try KVLoop(index: index, listener: listener, store: store, credentials: credentials, logger: logger)
        }
        for (started, loop) in loops.enumerated() {
            do {
                try loop.start(idlePoll: idlePoll)
            } catch {
                for loop in loops[..<started] { loop.stop() }
                throw error
            }
        }
        return KVServer(store: store, loops: loops, host: listener.address.host, port: listener.address.port)
    }

    /// One event loop for every two cores. A get answered from memory costs a read, a look-up and
    /// a write; what a loop more adds is wake-ups, and the writer and the clients want cores too.
    /// On two cores one loop served 38-41k gets a second at 12 us of CPU each, two loops 31-40k at
    /// 15-18 us (16 clients, Redis 38-43k at 11-12 us; the README has the runs).
    public static var defaultLoops: Int { max(1, System.coreCount / 2) }

    /// None: on this two-core machine 100 us of polling (30 or 60 us caught no request) bought one
    /// client's gets 11-19% at twice the CPU a get, and with sixteen clients sharing the cores it
    /// took the CPU they needed (the same rate, p99 four times as long). Seastar too stops polling
    /// where cores are shared (`--overprovisioned`). For a machine with cores to spare.
    public static let defaultIdlePoll = Duration.zero

    public func run() async throws {
        try await gracefulShutdown()
        await self.close()
    }

    /// Stops listening and closes the store; requests still in flight go unanswered.
    public func close() async {
        let loops = self.loops.withLockedValue { loops in
            defer { loops = nil }
            return loops
        }
        // The listener closes once the loops, which hold it, are stopped and let go.
        for loop in loops ?? [] { loop.stop() }
        try? self.store.close()
    }
}
