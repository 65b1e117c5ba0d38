import FerryPosix
import NIOCore

/// One event-loop timer that follows a connection's ``ClientDeadline``. A later deadline leaves
/// the timer as it is (when it fires, its handler looks and sets the next); an earlier one (an
/// idle or body wait shorter than the head's) moves it. Nothing is set while the server answers.
public struct DeadlineTimer {
    private var timer: Scheduled<Void>?
    private var firesAt: UInt64 = 0

    public init() {}

    /// Sets the timer for `deadline` on `loop`, unless one is set for no later; the closure
    /// `fire` makes runs then. It is made only when a timer is set: this is called on every read.
    public mutating func set(for deadline: ClientDeadline, on loop: any EventLoop, fire: () -> @Sendable () -> Void) {
        guard deadline.wait != .none else { return }
        if let timer {
            guard deadline.deadline < self.firesAt else { return }
            timer.cancel()
        }
        self.firesAt = deadline.deadline
        let now = MonotonicClock.nanoseconds()
        let delay = deadline.deadline > now ? deadline.deadline - now : 0
        self.timer = loop.scheduleTask(in: .nanoseconds(Int64(delay) + 1_000_000), fire())
    }

    /// The timer fired: the next ``set(for:on:fire:)`` schedules anew.
    public mutating func fired() {
        self.timer = nil
    }

    /// The connection closed: nothing keeps its handler alive.
    public mutating func cancel() {
        self.timer?.cancel()
        self.timer = nil
    }
}
