import FerryGuest
import Foundation
import NIOConcurrencyHelpers

/// How much CPU this process (the node) used over about the last second, from the kernel's
/// count of its CPU time.
final class CPUMeter: Sendable {
    private struct Sample {
        var at: ContinuousClock.Instant
        var cpu: Duration
        var use: Double
    }

    private let last = NIOLockedValueBox(Sample(at: .now, cpu: CPUTime.process(), use: 0))

    /// CPUs used on average since the sample before, which is taken anew once a second has passed.
    func cpus() -> Double {
        self.last.withLockedValue { sample in
            let now = ContinuousClock.now
            guard now - sample.at >= .seconds(1) else { return sample.use }
            let cpu = CPUTime.process()
            sample.use = (cpu - sample.cpu) / (now - sample.at)
            sample.at = now
            sample.cpu = cpu
            return sample.use
        }
    }
}
