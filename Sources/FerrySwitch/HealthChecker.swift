import CFerryLinux
import FerryPosix
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// How a switch checks that a backend is alive.
public enum HealthCheck: Sendable, Equatable, CustomStringConvertible {
    /// It accepts a TCP connection.
    case tcp
    /// It answers `GET PATH` with a status below 400.
    case http(path: String)

    /// Parses `tcp` or `http:/PATH`.
    public init?(_ text: String) {
        if text == "tcp" {
            self = .tcp
        } else if text.hasPrefix("http:/") {
            self = .http(path: String(text.dropFirst(5)))
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .tcp: "tcp"
        case .http(let path): "http:\(path)"
        }
    }
}

/// Health checks: every interval, each backend is checked; one that passes comes back into
/// rotation, one that fails leaves it.
final class HealthChecker: Sendable {
    private let balancer: Balancer
    private let addresses: [SocketAddress]
    private let check: HealthCheck
    private let interval: Duration
    private let logger: Logger
    /// Wakes every interval (or when woken at start) on a thread of its own.
    private let loop: WakeableLoop
    private let nextCheck = NIOLockedValueBox(ContinuousClock.now)

    init(
        balancer: Balancer,
        addresses: [SocketAddress],
        check: HealthCheck,
        interval: Duration,
        logger: Logger
    ) throws(PosixError) {
        self.balancer = balancer
        self.addresses = addresses
        self.check = check
        self.interval = interval
        self.logger = logger
        self.loop = try WakeableLoop(name: "ferry-switch-health")
    }

    /// Checks every backend now, then every interval.
    func start() throws(PosixError) {
        try self.loop.start(
            WakeableLoop.Policy(
                onReady: { _, _ in },
                afterEvents: { [self] in
                    let now = ContinuousClock.now
                    guard now >= self.nextCheck.withLockedValue({ $0 }) else { return }
                    self.checkAll()
                    self.nextCheck.withLockedValue { $0 = ContinuousClock.now + self.interval }
                }
            ),
            tick: Int32(clamping: max(1, self.interval.wholeMilliseconds))
        )
        self.loop.wake()
    }

    /// Ends the checks after the one in progress, without waiting for it.
    func stop() {
        self.loop.retire(whenIdle: { true })
    }

    func checkAll() {
        for (index, address) in self.addresses.enumerated() {
            let healthy = Self.passes(self.check, address, host: self.balancer.spec(index).address.description)
            if self.balancer.mark(index, up: healthy) {
                let endpoint = self.balancer.spec(index).address
                if healthy {
                    self.logger.info("switch: backend \(endpoint) passed its health check; back in rotation")
                } else {
                    self.logger.warning("switch: backend \(endpoint) failed its health check; out of rotation")
                }
            }
        }
    }

    /// Whether the backend at `address` passes `check`, each step within a second.
    static func passes(_ check: HealthCheck, _ address: SocketAddress, host: String) -> Bool {
        let fd = address.withSockAddr { pointer, length in ferry_connect_nonblocking(pointer, socklen_t(length)) }
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var poll = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard Glibc.poll(&poll, 1, 1000) == 1, ferry_socket_error(fd) == 0 else { return false }
        guard case .http(let path) = check else { return true }
        let request = Array(
            "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: ferry-switch-health\r\nConnection: close\r\n\r\n".utf8
        )
        guard send(fd, request, request.count, CInt(MSG_NOSIGNAL)) == request.count else { return false }
        // The status line is all it takes: "HTTP/1.x NNN".
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while answer.count < 12 {
            poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard Glibc.poll(&poll, 1, 1000) == 1 else { return false }
            let count = read(fd, &chunk, chunk.count)
            guard count > 0 else { return false }
            answer += chunk[..<count]
        }
        guard answer.starts(with: Array("HTTP/1.".utf8)),
            let status = Int(String(decoding: answer[9..<12], as: UTF8.self))
        else { return false }
        return status >= 200 && status < 400
    }
}
