import CFerryLinux
import FerryPosix
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Notices TCP urgent data (MSG_OOB) on client connections and cancels the request in progress
/// on that connection — the seed's out-of-band interrupt on the same connection.
///
/// The kernel does the noticing: every client socket is told (F_SETOWN_EX) to send SIGURG to this
/// watcher's own thread, which reads the signal from a signalfd and then looks for the urgent
/// byte on the server's open connections. So the cost is paid only when urgent data arrives —
/// watching the sockets for EPOLLPRI instead woke the thread on every segment they carried — and
/// it works the same whatever the request-serving threads are doing, under every execution model.
final class UrgentDataWatcher: Sendable {
    private let registry: ConnectionRegistry
    private let metrics: ServerMetrics
    private let logger: Logger
    private let loop: WakeableLoop
    /// The watcher thread's kernel id, once it runs: where SIGURG is routed.
    private let threadID = Atomic<Int32>(0)
    /// The signalfd, made on the watcher's thread (which alone blocks SIGURG).
    private let signals = Atomic<Int32>(-1)

    init(registry: ConnectionRegistry, metrics: ServerMetrics, logger: Logger) throws(PosixError) {
        self.loop = try WakeableLoop(name: "ferry-oob")
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
    }

    /// Routes `descriptor`'s urgent-data signal to the watcher.
    func watch(_ descriptor: Int32) {
        if ferry_route_urgent_signal(descriptor, self.threadID.load(ordering: .acquiring)) != 0 {
            self.logger.warning(
                "cannot watch socket \(descriptor) for urgent data: \(String(cString: strerror(errno)))"
            )
        }
    }

    /// Starts the watcher thread; returns once it can take signals.
    func start() throws(PosixError) {
        try self.loop.start(
            WakeableLoop.Policy(
                onStart: { [self] in
                    self.threadID.store(ferry_current_thread_id(), ordering: .releasing)
                    let signals = ferry_urgent_signalfd()
                    do throws(PosixError) {
                        guard signals >= 0 else { throw PosixError.system("signalfd") }
                        try self.loop.watch(signals)
                        self.signals.store(signals, ordering: .releasing)
                    } catch {
                        self.logger.error("urgent data will not be noticed: \(error)")
                    }
                },
                onReady: { [self] fd, _ in
                    if ferry_drain_signalfd(fd) > 0 { self.cancelUrgentRequests() }
                },
                onStop: { [self] _ in
                    let signals = self.signals.load(ordering: .acquiring)
                    if signals >= 0 { close(signals) }
                }
            )
        )
    }

    func stop() {
        self.loop.stop()
    }

    /// SIGURG does not say which socket: ask each open connection for its urgent byte.
    private func cancelUrgentRequests() {
        for descriptor in self.registry.descriptors {
            var byte: UInt8 = 0
            guard ferry_recv_urgent(descriptor, &byte) == 1 else { continue }
            self.metrics.urgentData()
            if let (connection, request) = self.registry.cancelCurrent(descriptor: descriptor) {
                self.logger.info("urgent data on connection \(connection): cancelled request \(request)")
            } else {
                self.logger.debug("urgent data on socket \(descriptor) with no request in progress")
            }
        }
    }
}
