import Foundation

/// CPU time from the kernel's clocks: what a guest's slices and a node's process used.
public enum CPUTime {
    /// CPU time of the calling thread.
    public static func thread() -> Duration { self.clock(CLOCK_THREAD_CPUTIME_ID) }

    /// CPU time of the whole process, all threads.
    public static func process() -> Duration { self.clock(CLOCK_PROCESS_CPUTIME_ID) }

    private static func clock(_ id: clockid_t) -> Duration {
        var time = timespec()
        clock_gettime(id, &time)
        return .seconds(time.tv_sec) + .nanoseconds(time.tv_nsec)
    }
}
