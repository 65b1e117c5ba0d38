#if canImport(Glibc)
import Glibc
#endif

/// Waits until `condition` holds, looking every 20 ms, for at most `timeout`: for state another
/// process or thread reaches where no event says when. Returns whether it held.
public func eventually(
    within timeout: Duration = .seconds(10),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// The same off the cooperative pool (tests on threads of their own), blocking; returns how long
/// `condition` took to hold, or `nil` when it did not within `timeout`.
public func waitUntil(within timeout: Duration = .seconds(10), _ condition: () throws -> Bool) rethrows -> Duration? {
    let clock = ContinuousClock()
    let start = clock.now
    while clock.now - start < timeout {
        if try condition() { return clock.now - start }
        var pause = timespec(tv_sec: 0, tv_nsec: 20_000_000)
        nanosleep(&pause, nil)
    }
    return nil
}
