import Metrics
import Synchronization

/// The counters every execution model keeps, reported through swift-metrics (labelled with the
/// model) and readable in-process for the control endpoint's `stats`.
public final class ServerMetrics: Sendable {
    private let servedCounter: Counter
    private let rejectedCounter: Counter
    private let cancelledCounter: Counter
    private let urgentCounter: Counter
    private let timedOutCounter: Counter
    private let queueDepthGauge: Gauge
    private let busyWorkersGauge: Gauge
    private let durationTimer: Timer

    private let servedCount = Atomic<Int>(0)
    private let rejectedCount = Atomic<Int>(0)
    private let cancelledCount = Atomic<Int>(0)
    private let urgentCount = Atomic<Int>(0)
    private let timedOutCount = Atomic<Int>(0)
    private let queueDepthCount = Atomic<Int>(0)
    private let busyWorkersCount = Atomic<Int>(0)

    /// - Parameters:
    ///   - model: labels every metric (`model="dispatcher"`).
    ///   - factory: where the metrics go; the process-wide `MetricsSystem` unless a test injects one.
    public init(model: ExecutionModel, factory: any MetricsFactory = MetricsSystem.factory) {
        let dimensions = [("model", model.rawValue)]
        self.servedCounter = Counter(
            label: "ferry_http_requests_served_total",
            dimensions: dimensions,
            factory: factory
        )
        self.rejectedCounter = Counter(
            label: "ferry_http_requests_rejected_total",
            dimensions: dimensions,
            factory: factory
        )
        self.cancelledCounter = Counter(
            label: "ferry_http_requests_cancelled_total",
            dimensions: dimensions,
            factory: factory
        )
        self.urgentCounter = Counter(label: "ferry_http_urgent_data_total", dimensions: dimensions, factory: factory)
        self.timedOutCounter = Counter(
            label: "ferry_http_connections_timed_out_total",
            dimensions: dimensions,
            factory: factory
        )
        self.queueDepthGauge = Gauge(label: "ferry_http_queue_depth", dimensions: dimensions, factory: factory)
        self.busyWorkersGauge = Gauge(label: "ferry_http_busy_workers", dimensions: dimensions, factory: factory)
        self.durationTimer = Timer(
            label: "ferry_http_request_duration_seconds",
            dimensions: dimensions,
            factory: factory
        )
    }

    /// A request answered; its latency runs from when `flag` was made (its start).
    func served(status: Int, flag: CancellationFlag) {
        self.servedCount.add(1, ordering: .relaxed)
        self.servedCounter.increment()
        let elapsed = (ContinuousClock.now - flag.started).components
        self.durationTimer.recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
    }

    func rejected() {
        self.rejectedCount.add(1, ordering: .relaxed)
        self.rejectedCounter.increment()
    }

    func cancelled() {
        self.cancelledCount.add(1, ordering: .relaxed)
        self.cancelledCounter.increment()
    }

    /// TCP urgent data arrived on a client connection.
    func urgentData() {
        self.urgentCount.add(1, ordering: .relaxed)
        self.urgentCounter.increment()
    }

    /// A client connection was closed because its header or idle timeout ran out.
    func timedOut() {
        self.timedOutCount.add(1, ordering: .relaxed)
        self.timedOutCounter.increment()
    }

    func queueDepth(changedBy delta: Int) {
        let depth = self.queueDepthCount.add(delta, ordering: .relaxed).newValue
        self.queueDepthGauge.record(depth)
    }

    func busyWorkers(changedBy delta: Int) {
        let busy = self.busyWorkersCount.add(delta, ordering: .relaxed).newValue
        self.busyWorkersGauge.record(busy)
    }

    /// The current values, in a stable order.
    public var snapshot: [(name: String, value: Int64)] {
        [
            ("requests_served", Int64(self.servedCount.load(ordering: .relaxed))),
            ("requests_rejected", Int64(self.rejectedCount.load(ordering: .relaxed))),
            ("requests_cancelled", Int64(self.cancelledCount.load(ordering: .relaxed))),
            ("urgent_data", Int64(self.urgentCount.load(ordering: .relaxed))),
            ("connections_timed_out", Int64(self.timedOutCount.load(ordering: .relaxed))),
            ("queue_depth", Int64(self.queueDepthCount.load(ordering: .relaxed))),
            ("busy_workers", Int64(self.busyWorkersCount.load(ordering: .relaxed))),
        ]
    }
}
