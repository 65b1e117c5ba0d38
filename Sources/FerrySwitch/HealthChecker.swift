import CFerryLinux
import FerryWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// TCP health checks: every interval, each backend is connected to; one that answers comes back
/// into rotation, one that does not leaves it.
final class HealthChecker: Sendable {
    private let balancer: Balancer
    private let addresses: [SocketAddress]
    private let interval: Duration
    private let logger: Logger
    private let stopping = NIOLockedValueBox(false)
    private let wakeUp = NSCondition()

    init(balancer: Balancer, addresses: [SocketAddress], interval: Duration, logger: Logger) {
        self.balancer = balancer
        self.addresses = addresses
        self.interval = interval
        self.logger = logger
    }

    func start() {
        let thread = Thread { [self] in
            while !self.stopping.withLockedValue({ $0 }) {
                self.checkAll()
                self.wakeUp.lock()
                if !self.stopping.withLockedValue({ $0 }) {
                    _ = self.wakeUp.wait(until: Date(timeIntervalSinceNow: self.interval.inSeconds))
                }
                self.wakeUp.unlock()
            }
        }
        thread.name = "ferry-switch-health"
        thread.start()
    }

    func stop() {
        self.wakeUp.lock()
        self.stopping.withLockedValue { $0 = true }
        self.wakeUp.broadcast()
        self.wakeUp.unlock()
    }

    func checkAll() {
        for (index, address) in self.addresses.enumerated() {
            let healthy = Self.answers(address, timeoutMilliseconds: 1000)
            if self.balancer.mark(index, up: healthy) {
                let endpoint = self.balancer.backends[index].spec.address
                if healthy {
                    self.logger.info("switch: backend \(endpoint) passed its health check; back in rotation")
                } else {
                    self.logger.warning("switch: backend \(endpoint) failed its health check; out of rotation")
                }
            }
        }
    }

    /// Whether a TCP connection to `address` is accepted within the timeout.
    static func answers(_ address: SocketAddress, timeoutMilliseconds: Int32) -> Bool {
        let fd = address.withSockAddr { pointer, length in ferry_connect_nonblocking(pointer, socklen_t(length)) }
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var poll = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard Glibc.poll(&poll, 1, timeoutMilliseconds) == 1 else { return false }
        return ferry_socket_error(fd) == 0
    }
}
