import CFerryLinux
import Foundation
import Logging
import NIOConcurrencyHelpers

/// One switch thread: an epoll loop over the shared listening socket (`EPOLLEXCLUSIVE`, so one
/// thread wakes per connection) and the descriptors it watches for its owner, who is called on
/// this thread only. Both switches that move bytes themselves (l4, l7) run on these.
final class EpollThread: @unchecked Sendable {
    // Sendable: epoll_ctl is thread-safe, and the handlers run only on this thread.
    let listener: CInt
    private let name: String
    private let epoll: CInt
    private let wake: CInt
    private let logger: Logger
    private let finished = NIOLockedValueBox(false)
    /// Set by `retire`: the owner's test of whether the loop has nothing left to serve.
    private let retiring = NIOLockedValueBox<(@Sendable () -> Bool)?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(name: String, listener: CInt, logger: Logger) throws {
        // splice(2) and write(2) to a peer that hung up would kill the process with SIGPIPE: like
        // nginx and HAProxy, a switch ignores it and handles EPIPE.
        signal(SIGPIPE, SIG_IGN)
        self.name = name
        self.listener = listener
        self.logger = logger
        self.epoll = epoll_create1(CInt(EPOLL_CLOEXEC))
        self.wake = eventfd(0, CInt(EFD_NONBLOCK | EFD_CLOEXEC))
        guard self.epoll >= 0, self.wake >= 0 else {
            throw SwitchError.system("epoll: \(String(cString: strerror(errno)))")
        }
        try self.watch(listener, EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue)
        try self.watch(self.wake, EPOLLIN.rawValue)
    }

    /// Starts the thread. `onListener` runs when connections wait to be accepted, `onEvent` for
    /// every other descriptor's events, `onTick` (when given) at least every `tick` milliseconds,
    /// and `onStop` once at the end, on the same thread.
    func start(
        onListener: @escaping @Sendable () -> Void,
        onEvent: @escaping @Sendable (CInt, UInt32) -> Void,
        tick: CInt = -1,
        onTick: @escaping @Sendable () -> Void = {},
        onStop: @escaping @Sendable () -> Void
    ) {
        let thread = Thread { [self] in
            var events = [epoll_event](repeating: epoll_event(), count: 256)
            while !self.finished.withLockedValue({ $0 }) {
                let count = epoll_wait(self.epoll, &events, CInt(events.count), tick)
                if count < 0 {
                    if errno == EINTR { continue }
                    self.logger.error("\(self.name) stops: epoll_wait: \(String(cString: strerror(errno)))")
                    break
                }
                for event in events[0..<Int(count)] {
                    let fd = event.data.fd
                    if fd == self.listener {
                        onListener()
                    } else if fd != self.wake {
                        onEvent(fd, event.events)
                    }
                }
                if tick >= 0 { onTick() }
                if let isIdle = self.retiring.withLockedValue({ $0 }), isIdle() { break }
            }
            onStop()
            self.done.signal()
        }
        thread.name = self.name
        thread.start()
    }

    /// Stops accepting: the listening socket leaves this loop, which serves on what it has and
    /// ends (with `onStop`) once `isIdle` says nothing is left. A reload retires the old switch's
    /// loops so that no established connection is dropped.
    func retire(whenIdle isIdle: @escaping @Sendable () -> Bool) {
        epoll_ctl(self.epoll, EPOLL_CTL_DEL, self.listener, nil)
        self.retiring.withLockedValue { $0 = isIdle }
        var one: UInt64 = 1
        _ = write(self.wake, &one, 8)
    }

    /// Ends the loop (at once, or after `retire` once it is idle), waits for its `onStop`, and
    /// closes the epoll descriptors.
    func stop() {
        self.finished.withLockedValue { $0 = true }
        var one: UInt64 = 1
        _ = write(self.wake, &one, 8)
        self.done.wait()
        close(self.epoll)
        close(self.wake)
    }

    func watch(_ fd: CInt, _ events: UInt32) throws {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        guard epoll_ctl(self.epoll, EPOLL_CTL_ADD, fd, &event) == 0 else {
            throw SwitchError.system("epoll_ctl: \(String(cString: strerror(errno)))")
        }
    }

    /// The client's IP address bytes, for the source-hash policy and X-Forwarded-For.
    static func peerAddress(_ fd: CInt) -> [UInt8] {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard result == 0 else { return [] }
        if storage.ss_family == sa_family_t(AF_INET6) {
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    withUnsafeBytes(of: address.pointee.sin6_addr) { Array($0) }
                }
            }
        }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                withUnsafeBytes(of: address.pointee.sin_addr) { Array($0) }
            }
        }
    }

    /// An address's bytes as text: dotted for IPv4, colon-separated hex groups for IPv6.
    static func describe(_ address: [UInt8]) -> String {
        if address.count == 4 { return address.map(String.init).joined(separator: ".") }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard address.count == 16, inet_ntop(AF_INET6, address, &text, socklen_t(text.count)) != nil else {
            return "unknown"
        }
        return String(cString: text)
    }
}
