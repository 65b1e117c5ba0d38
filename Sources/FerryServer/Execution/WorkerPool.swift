import Dispatch
import FerryPosix
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A fixed set of worker threads taking jobs from a bounded queue. `submit` never waits: a full
/// queue refuses the job, so overload turns into fast 503s instead of an unbounded backlog.
final class WorkerPool: Sendable {
    typealias Job = @Sendable () -> Void

    let capacity: Int
    private struct Queue {
        var jobs: CircularBuffer<Job>
        var stopping = false
    }

    private let queue: NIOLockedValueBox<Queue>
    private let available = DispatchSemaphore(value: 0)
    private let threads = NIOLockedValueBox<[KernelThread]>([])
    private let metrics: ServerMetrics

    init(workers: Int, capacity: Int, metrics: ServerMetrics) throws(PosixError) {
        self.capacity = capacity
        self.metrics = metrics
        self.queue = NIOLockedValueBox(Queue(jobs: CircularBuffer(initialCapacity: capacity)))
        var started: [KernelThread] = []
        for index in 0..<workers {
            started.append(try KernelThread.start(name: "ferry-worker-\(index)") { [self] in self.work() })
        }
        self.threads.withLockedValue { $0 = started }
    }

    /// Queues `job`. Returns `false` when the queue is full or the pool is stopping.
    func submit(_ job: @escaping Job) -> Bool {
        let accepted = self.queue.withLockedValue { state in
            guard !state.stopping, state.jobs.count < self.capacity else { return false }
            state.jobs.append(job)
            return true
        }
        guard accepted else { return false }
        self.metrics.queueDepth(changedBy: 1)
        self.available.signal()
        return true
    }

    /// Lets queued jobs finish, then stops the workers.
    func shutdown() {
        let threads = self.threads.withLockedValue { threads in
            defer { threads = [] }
            return threads
        }
        self.queue.withLockedValue { $0.stopping = true }
        for _ in threads { self.available.signal() }
        for thread in threads { thread.join() }
    }

    private func work() {
        while true {
            self.available.wait()
            let job = self.queue.withLockedValue { state -> Job? in
                state.jobs.isEmpty ? nil : state.jobs.removeFirst()
            }
            guard let job else { return }
            self.metrics.queueDepth(changedBy: -1)
            self.metrics.busyWorkers(changedBy: 1)
            job()
            self.metrics.busyWorkers(changedBy: -1)
        }
    }
}
