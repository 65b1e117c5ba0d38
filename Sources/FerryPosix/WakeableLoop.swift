import CFerryLinux
import Dispatch
import Synchronization

import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(Glibc)
import Glibc
#endif

/// An epoll loop on a kernel thread of its own, which other threads can wake (an eventfd) to
/// hand it work or stop it. Every loop of Ferry's own below NIO runs on one — the file server's
/// front ends, the urgent-data watcher, the handoff receiver and switch, the l4 and l7 switches'
/// threads, the superserver — and brings only its policy: what to watch, what to do with each
/// ready descriptor, what to do when woken.
public final class WakeableLoop: Sendable {
    public let name: String
    private let epoll: Int32
    private let wakeFD: Int32
    private let stopping = Atomic<Bool>(false)
    /// Set by ``retire(whenIdle:)``: the owner's test of whether nothing is left to serve.
    private let retiring = NIOLockedValueBox<(@Sendable () -> Bool)?>(nil)
    /// The loop's thread, until ``stop()`` joins it or the loop, ended by retiring, lets it go.
    private let thread = NIOLockedValueBox<(handle: KernelThread?, ended: Bool)>((nil, false))

    /// What a loop does; each runs on the loop's thread only.
    public struct Policy: Sendable {
        /// Once, before the first wait; ``WakeableLoop/start(_:tick:)`` returns after it.
        public var onStart: @Sendable () -> Void = {}
        /// A watched descriptor is ready with these epoll events.
        public var onReady: @Sendable (Int32, UInt32) -> Void
        /// Another thread called ``WakeableLoop/wake()``.
        public var onWake: @Sendable () -> Void = {}
        /// After every wait, woken or timed out: for work the events left queued and for timers.
        public var afterEvents: @Sendable () -> Void = {}
        /// Once, at the end; with the error when the loop failed rather than being stopped.
        public var onStop: @Sendable (PosixError?) -> Void = { _ in }

        public init(
            onStart: @escaping @Sendable () -> Void = {},
            onReady: @escaping @Sendable (Int32, UInt32) -> Void,
            onWake: @escaping @Sendable () -> Void = {},
            afterEvents: @escaping @Sendable () -> Void = {},
            onStop: @escaping @Sendable (PosixError?) -> Void = { _ in }
        ) {
            self.onStart = onStart
            self.onReady = onReady
            self.onWake = onWake
            self.afterEvents = afterEvents
            self.onStop = onStop
        }
    }

    public init(name: String) throws(PosixError) {
        self.name = name
        self.epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard self.epoll >= 0 else { throw PosixError.system("\(name): epoll_create1") }
        self.wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard self.wakeFD >= 0 else {
            let error = PosixError.system("\(name): eventfd")
            close(self.epoll)
            throw error
        }
        try self.watch(self.wakeFD)
    }

    deinit {
        close(self.epoll)
        close(self.wakeFD)
    }

    /// Starts watching `fd` for `events` (level-triggered readability unless told otherwise).
    /// Callable from any thread. Unwatch a descriptor before closing it: its number may come back.
    public func watch(_ fd: Int32, events: UInt32 = EPOLLIN.rawValue) throws(PosixError) {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        guard epoll_ctl(self.epoll, EPOLL_CTL_ADD, fd, &event) == 0 else {
            throw PosixError.system("\(self.name): cannot watch descriptor \(fd)")
        }
    }

    public func unwatch(_ fd: Int32) {
        epoll_ctl(self.epoll, EPOLL_CTL_DEL, fd, nil)
    }

    /// Runs `policy` on a new kernel thread, waking at least every `tick` milliseconds when
    /// given; returns once `onStart` has run. With `idlePoll`, a loop whose events came closer
    /// together than that keeps polling that long before it sleeps (``run``).
    public func start(_ policy: Policy, tick: Int32 = -1, idlePoll: Duration = .zero) throws(PosixError) {
        let started = DispatchSemaphore(value: 0)
        let thread = try KernelThread.start(name: self.name) { [self] in
            policy.onStart()
            started.signal()
            policy.onStop(self.run(policy, tick: tick, idlePoll: idlePoll.wholeNanoseconds))
            self.letGo()
        }
        self.thread.withLockedValue { state in
            // A loop that ended before its handle was kept: nobody will join it.
            if state.ended { thread.detach() } else { state.handle = thread }
        }
        started.wait()
    }

    /// At the end of the loop's thread: a loop that retired and ended by itself is joined by
    /// nobody (unless ``stop()`` has taken the handle to join it), so its thread frees itself.
    private func letGo() {
        self.thread.withLockedValue { state in
            state.ended = true
            state.handle?.detach()
            state.handle = nil
        }
    }

    /// Wakes the loop: its `onWake` runs next.
    public func wake() {
        var one: UInt64 = 1
        _ = write(self.wakeFD, &one, 8)
    }

    /// Ends the loop once `isIdle` says nothing is left (checked after every wait), rather than
    /// at once: a switch reloading retires its old loops so that no open connection is dropped.
    public func retire(whenIdle isIdle: @escaping @Sendable () -> Bool) {
        self.retiring.withLockedValue { $0 = isIdle }
        self.wake()
    }

    /// Whether ``stop()`` was called.
    public var isStopping: Bool { self.stopping.load(ordering: .acquiring) }

    /// Ends the loop (at once; after ``retire(whenIdle:)`` it may have ended already) and waits
    /// for its `onStop`. Not from the loop's own thread.
    public func stop() {
        self.stopping.store(true, ordering: .releasing)
        self.wake()
        self.join()
    }

    private func join() {
        self.thread.withLockedValue { state in
            defer { state.handle = nil }
            return state.handle
        }?.join()
    }

    /// Idle polling, as Seastar's reactor does (`--idle-poll-time-us`): a thread asleep in
    /// `epoll_wait` takes tens of microseconds to wake on a virtual machine, which a client that
    /// sends its next request as soon as it has the answer pays on every request. So a loop whose
    /// last events followed the ones before within `idlePoll` polls without sleeping for up to
    /// `idlePoll` after them; one whose events come further apart sleeps at once, so a quiet loop
    /// spends nothing on it.
    private func run(_ policy: Policy, tick: Int32, idlePoll: UInt64) -> PosixError? {
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        var polling = false
        var lastEvents: UInt64 = 0
        while !self.isStopping {
            let count = epoll_wait(self.epoll, &events, Int32(events.count), polling ? 0 : tick)
            if count < 0 {
                if errno == EINTR { continue }
                return PosixError.system("\(self.name): epoll_wait")
            }
            if idlePoll > 0, count > 0 || polling {
                polling = MonotonicClock.nanoseconds() &- lastEvents < idlePoll
                // Nothing yet: poll again until the window closes (a thread waiting for this core
                // runs first), then go on as after a tick, and sleep.
                if count == 0, polling {
                    sched_yield()
                    continue
                }
            }
            for event in events[0..<Int(count)] {
                if event.data.fd == self.wakeFD {
                    var value: UInt64 = 0
                    _ = read(self.wakeFD, &value, 8)
                    policy.onWake()
                } else {
                    policy.onReady(event.data.fd, event.events)
                }
            }
            policy.afterEvents()
            if idlePoll > 0, count > 0 { lastEvents = MonotonicClock.nanoseconds() }
            if let isIdle = self.retiring.withLockedValue({ $0 }), isIdle() { break }
        }
        return nil
    }
}
