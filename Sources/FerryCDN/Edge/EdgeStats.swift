import Synchronization

import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// The edge's counters, bumped from every event loop; the load (requests per second over the
/// last second) is what the edge reports to the redirector and the endpoint daemon.
final class EdgeStats: Sendable {
    let requests = Atomic<Int>(0)
    let hits = Atomic<Int>(0)
    let misses = Atomic<Int>(0)
    let stale = Atomic<Int>(0)
    let passes = Atomic<Int>(0)
    let originRequests = Atomic<Int>(0)
    let originFailures = Atomic<Int>(0)
    let connections = Atomic<Int>(0)
    private let sampled = NIOLockedValueBox(Sample(at: EdgeClock.now(), requests: 0, rate: 0))

    private struct Sample {
        var at: Double
        var requests: Int
        var rate: Double
    }

    static func bump(_ counter: borrowing Atomic<Int>, by amount: Int = 1) {
        counter.add(amount, ordering: .relaxed)
    }

    /// Requests per second since the last sample; called about once a second.
    func sampleLoad() {
        let now = EdgeClock.now()
        let requests = self.requests.load(ordering: .relaxed)
        self.sampled.withLockedValue { sample in
            let elapsed = now - sample.at
            guard elapsed > 0.05 else { return }
            sample.rate = Double(requests - sample.requests) / elapsed
            sample = Sample(at: now, requests: requests, rate: sample.rate)
        }
    }

    /// Requests per second, as last sampled.
    var load: Double { self.sampled.withLockedValue { $0.rate } }

    /// The share of cacheable requests answered from the cache (stale answers count as hits).
    var hitRatio: Double {
        let hits = self.hits.load(ordering: .relaxed) + self.stale.load(ordering: .relaxed)
        let lookups = hits + self.misses.load(ordering: .relaxed)
        return lookups == 0 ? 0 : Double(hits) / Double(lookups)
    }
}
