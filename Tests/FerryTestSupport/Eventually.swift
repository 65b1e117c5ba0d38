#if canImport(Glibc)
import Glibc
#endif

/// Waits until `condition` holds, checking every 20 ms, for at most `timeout`: for state that
/// another process or thread reaches, where no event says when. Returns whether it held.
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

/// The same, for code off the cooperative pool (tests on threads of their own).
public func eventuallyBlocking(within timeout: Duration = .seconds(10), _ condition: () throws -> Bool) rethrows -> Bool
{
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        var pause = timespec(tv_sec: 0, tv_nsec: 20_000_000)
        nanosleep(&pause, nil)
    }
    return try condition()
}
