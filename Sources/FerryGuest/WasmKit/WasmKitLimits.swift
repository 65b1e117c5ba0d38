import FerryPosix
import Foundation
import NIOConcurrencyHelpers
import WasmKit

/// Refuses memory beyond the limit by throwing, so the guest stops at the `memory.grow` (or at
/// instantiation) with a reason instead of carrying on with -1.
final class MemoryLimiter: ResourceLimiter, @unchecked Sendable {
    let maxBytes: Int
    /// Confined to the guest's thread, like the store that calls it.
    var refused: Int?

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    func limitMemoryGrowth(to desired: Int) throws -> Bool {
        guard desired <= self.maxBytes else {
            self.refused = desired
            throw GuestStop.memoryLimit(limitBytes: self.maxBytes, requestedBytes: desired)
        }
        return true
    }

    func limitTableGrowth(to desired: Int) throws -> Bool { desired <= 1_000_000 }
}

/// Enforces a wall-clock deadline on a call that may never call the host.
///
/// WasmKit has no way to interrupt a running store from another thread. It charges fuel, though,
/// by reading the store's fuel counter from memory at every metered region. Once the deadline
/// passes, this watchdog empties that counter (every millisecond, since a charge in flight may
/// write back over it) until the call ends, and the guest traps out of fuel at its next region.
/// The store is otherwise confined to its thread; the counter is one aligned 64-bit word, and
/// the only thing written to it from here is zero.
final class DeadlineWatchdog: @unchecked Sendable {
    let deadline: Duration
    private let store: Store
    private let state = NIOLockedValueBox<(running: Bool, fired: Bool, passed: Bool, generation: Int)>(
        (false, false, false, 0)
    )
    private let condition = NSCondition()

    init(deadline: Duration, store: Store) {
        self.deadline = deadline
        self.store = store
    }

    /// Whether the deadline of the current call passed.
    var hasPassed: Bool { self.state.withLockedValue { $0.passed } }
    /// Whether the watchdog took the guest's fuel in the current call.
    var hasFired: Bool { self.state.withLockedValue { $0.fired } }

    func run<Result>(_ body: () throws -> Result) rethrows -> Result {
        let generation = self.state.withLockedValue { state in
            state = (true, false, false, state.generation + 1)
            return state.generation
        }
        let end = ContinuousClock.now + self.deadline
        let thread = Thread { [self] in self.watch(until: end, generation: generation) }
        thread.name = "ferry-guest-deadline"
        thread.start()
        defer {
            self.condition.lock()
            self.state.withLockedValue { $0.running = false }
            self.condition.broadcast()
            self.condition.unlock()
        }
        return try body()
    }

    private func watch(until end: ContinuousClock.Instant, generation: Int) {
        self.condition.lock()
        while self.state.withLockedValue({ $0.running && $0.generation == generation }) {
            let now = ContinuousClock.now
            if now >= end {
                self.state.withLockedValue { $0.passed = true }
                break
            }
            _ = self.condition.wait(until: Date(timeIntervalSinceNow: (end - now).inSeconds))
        }
        self.condition.unlock()
        while self.state.withLockedValue({ $0.running && $0.generation == generation }) {
            self.state.withLockedValue { $0.fired = true }
            self.store.fuel = Fuel(remaining: 0)
            usleep(1000)
        }
    }
}

extension Optional where Wrapped == DeadlineWatchdog {
    /// Runs `body` under the deadline, if there is one.
    func guarded<Result>(_ body: () throws -> Result) rethrows -> Result {
        guard let watchdog = self else { return try body() }
        return try watchdog.run(body)
    }
}
