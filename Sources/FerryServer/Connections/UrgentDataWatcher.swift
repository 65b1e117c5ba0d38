import CFerryLinux
import Dispatch
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
final class UrgentDataWatcher: @unchecked Sendable {
    private let registry: ConnectionRegistry
    private let metrics: ServerMetrics
    private let logger: Logger
    private let wakeFD: Int32
    /// The watcher thread's kernel id, once it runs: where SIGURG is routed.
    private let threadID = Atomic<Int32>(0)
    private let started = DispatchSemaphore(value: 0)
    private var thread: pthread_t?

    init(registry: ConnectionRegistry, metrics: ServerMetrics, logger: Logger) throws {
        self.wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard self.wakeFD >= 0 else { throw SocketError.system("eventfd") }
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
    }

    deinit { close(self.wakeFD) }

    /// Routes `descriptor`'s urgent-data signal to the watcher.
    func watch(_ descriptor: Int32) {
        if ferry_route_urgent_signal(descriptor, self.threadID.load(ordering: .acquiring)) != 0 {
            self.logger.warning(
                "cannot watch socket \(descriptor) for urgent data: \(String(cString: strerror(errno)))"
            )
        }
    }

    /// Starts the watcher thread; returns once it can take signals.
    func start() {
        self.thread = try! startThread(name: "ferry-oob") { self.run() }
        self.started.wait()
    }

    func stop() {
        var one: UInt64 = 1
        _ = write(self.wakeFD, &one, 8)
        if let thread { pthread_join(thread, nil) }
        self.thread = nil
    }

    private func run() {
        let signals = ferry_urgent_signalfd()
        self.threadID.store(ferry_current_thread_id(), ordering: .releasing)
        self.started.signal()
        guard signals >= 0 else {
            self.logger.error("urgent data will not be noticed: signalfd failed: \(String(cString: strerror(errno)))")
            return
        }
        defer { close(signals) }
        var pollSet = [
            pollfd(fd: self.wakeFD, events: Int16(POLLIN), revents: 0),
            pollfd(fd: signals, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            guard poll(&pollSet, 2, -1) >= 0 || errno == EINTR else { return }
            if pollSet[0].revents != 0 { return }
            guard pollSet[1].revents != 0, ferry_drain_signalfd(signals) > 0 else { continue }
            // SIGURG does not say which socket: ask each open connection for its urgent byte.
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
}
