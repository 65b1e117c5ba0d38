#if canImport(Glibc)
import Glibc
#endif

/// Nanoseconds on the kernel's monotonic clock: for deadlines checked on hot paths, where a
/// plain integer compares faster than `ContinuousClock.Instant`.
public enum MonotonicClock {
    public static func nanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
