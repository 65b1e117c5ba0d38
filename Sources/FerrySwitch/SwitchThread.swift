import CFerryLinux
import FerryPosix

#if canImport(Glibc)
import Glibc
#endif

/// One thread of a switch that moves bytes itself (l4, l7): a ``WakeableLoop`` over the shared
/// listening socket (`EPOLLEXCLUSIVE`, so one thread wakes per connection) and the descriptors it
/// watches for its owner, who is called on this thread only.
struct SwitchThread: Sendable {
    let listener: CInt
    private let loop: WakeableLoop

    init(name: String, listener: CInt) throws(PosixError) {
        // splice(2) and write(2) to a peer that hung up would kill the process with SIGPIPE: like
        // nginx and HAProxy, a switch ignores it and handles EPIPE.
        signal(SIGPIPE, SIG_IGN)
        self.listener = listener
        self.loop = try WakeableLoop(name: name)
        try self.loop.watch(listener, events: EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue)
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
    ) throws(PosixError) {
        let listener = self.listener
        try self.loop.start(
            WakeableLoop.Policy(
                onReady: { fd, events in fd == listener ? onListener() : onEvent(fd, events) },
                afterEvents: onTick,
                onStop: { _ in onStop() }
            ),
            tick: tick
        )
    }

    /// Stops accepting: the listening socket leaves this loop, which serves on what it has and
    /// ends (with `onStop`) once `isIdle` says nothing is left. A reload retires the old switch's
    /// loops so that no established connection is dropped.
    func retire(whenIdle isIdle: @escaping @Sendable () -> Bool) {
        self.loop.unwatch(self.listener)
        self.loop.retire(whenIdle: isIdle)
    }

    /// Ends the loop (at once, or after `retire` once it is idle) and waits for its `onStop`.
    func stop() {
        self.loop.stop()
    }

    func watch(_ fd: CInt, _ events: UInt32) throws(PosixError) {
        try self.loop.watch(fd, events: events)
    }
}
