import CFerryLinux
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Notices TCP urgent data (MSG_OOB) on client connections and cancels the request in progress
/// on that connection — the seed's out-of-band interrupt on the same connection.
///
/// It runs its own epoll set, watching only `EPOLLPRI`, on one thread, so it sees the urgent byte
/// whatever the request-serving threads are doing, and no matter which execution model runs.
final class UrgentDataWatcher: @unchecked Sendable {
    private let epollFD: Int32
    private let wakeFD: Int32
    private let registry: ConnectionRegistry
    private let metrics: ServerMetrics
    private let logger: Logger
    private var thread: pthread_t?

    init(registry: ConnectionRegistry, metrics: ServerMetrics, logger: Logger) throws {
        self.epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        self.wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard self.epollFD >= 0, self.wakeFD >= 0 else { throw SocketError.system("epoll_create1/eventfd") }
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = self.wakeFD
        epoll_ctl(self.epollFD, EPOLL_CTL_ADD, self.wakeFD, &event)
    }

    deinit {
        close(self.epollFD)
        close(self.wakeFD)
    }

    /// Starts watching `descriptor` for urgent data. The kernel drops it from the set when it closes.
    func watch(_ descriptor: Int32) {
        var event = epoll_event()
        event.events = EPOLLPRI.rawValue
        event.data.fd = descriptor
        if epoll_ctl(self.epollFD, EPOLL_CTL_ADD, descriptor, &event) != 0, errno == EEXIST {
            epoll_ctl(self.epollFD, EPOLL_CTL_MOD, descriptor, &event)
        }
    }

    private func unwatch(_ descriptor: Int32) {
        _ = epoll_ctl(self.epollFD, EPOLL_CTL_DEL, descriptor, nil as UnsafeMutablePointer<epoll_event>?)
    }

    func start() {
        self.thread = startThread(name: "ferry-oob") { self.run() }
    }

    func stop() {
        var one: UInt64 = 1
        _ = write(self.wakeFD, &one, 8)
        if let thread { pthread_join(thread, nil) }
        self.thread = nil
    }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let count = epoll_wait(self.epollFD, &events, Int32(events.count), -1)
            if count < 0 {
                if errno == EINTR { continue }
                self.logger.error("urgent-data watcher stopped: epoll_wait failed: \(String(cString: strerror(errno)))")
                return
            }
            for event in events[0..<Int(count)] {
                let descriptor = event.data.fd
                if descriptor == self.wakeFD { return }
                // epoll reports hang-ups and errors even unasked, and keeps reporting them until the
                // socket is closed: a client that went away is no longer ours to watch.
                guard event.events & EPOLLPRI.rawValue != 0 else {
                    self.unwatch(descriptor)
                    continue
                }
                var byte: UInt8 = 0
                guard ferry_recv_urgent(descriptor, &byte) == 1 else {
                    if errno != EAGAIN, errno != EINVAL { self.unwatch(descriptor) }
                    continue
                }
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
