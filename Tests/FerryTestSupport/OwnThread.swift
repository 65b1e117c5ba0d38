import Foundation
import Testing

/// Runs each test of a suite on a thread of its own instead of the cooperative pool.
///
/// The tests that drive `ferry` processes block: they wait for commands to end and read pipes;
/// the guest tests run guests synchronously, on each engine at once. On a two-core machine the
/// pool has two threads, and two such tests blocking for seconds or minutes starve every other
/// suite of the parallel run (its in-process servers and clients) until its leases and deadlines
/// run out.
/// Recording issues still works: the test runs in its own task, with its task-locals, only
/// elsewhere.
///
/// These suites are also the ones that start clusters of `ferry` processes, so at most one more
/// of their tests than there are cores runs at a time (``ProcessTestGate``): nine of them at once
/// beside the in-process suites kept two cores at a load of 13 and CPU pressure over 90% for
/// minutes, and leases of 10 s, 30 s call deadlines and health checks failed for no fault of
/// the code under test.
public struct OwnThreadTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test,
        testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        guard testCase != nil else { return try await function() }
        await ProcessTestGate.shared.enter()
        let executor = ThreadExecutor(name: test.name)
        defer {
            executor.stop()
            Task { await ProcessTestGate.shared.leave() }
        }
        try await withTaskExecutorPreference(executor) { try await function() }
    }
}

/// A counting gate for the tests that drive processes: `width` run, the rest wait in turn.
actor ProcessTestGate {
    static let shared = ProcessTestGate(width: ProcessInfo.processInfo.activeProcessorCount + 1)

    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(width: Int) {
        self.free = width
    }

    func enter() async {
        if self.free > 0 {
            self.free -= 1
            return
        }
        await withCheckedContinuation { self.waiting.append($0) }
    }

    func leave() {
        if self.waiting.isEmpty {
            self.free += 1
        } else {
            self.waiting.removeFirst().resume()
        }
    }
}

extension Trait where Self == OwnThreadTrait {
    /// Each test on a thread of its own (see ``OwnThreadTrait``).
    public static var onThreadsOfTheirOwn: Self { OwnThreadTrait() }
}

/// A task executor with one thread, which runs the jobs given to it in turn.
final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    // Sendable: `jobs` and `stopping` are guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopping = false

    init(name: String) {
        let thread = Thread { [self] in self.run() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.condition.lock()
        self.jobs.append(job)
        self.condition.signal()
        self.condition.unlock()
    }

    /// Ends the thread once the jobs given so far have run.
    func stop() {
        self.condition.lock()
        self.stopping = true
        self.condition.signal()
        self.condition.unlock()
    }

    private func run() {
        while true {
            self.condition.lock()
            while self.jobs.isEmpty && !self.stopping { self.condition.wait() }
            if self.jobs.isEmpty {
                self.condition.unlock()
                return
            }
            let job = self.jobs.removeFirst()
            self.condition.unlock()
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
