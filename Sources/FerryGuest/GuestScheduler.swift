import Foundation
import NIOConcurrencyHelpers
import WasmKit

/// Runs many guests as user-level threads over a few kernel threads (many-to-many).
///
/// Each guest is a ``GuestTask``: one call into its own instance. A kernel thread takes the next
/// runnable task and runs it for one time slice. A guest built with `FERRY_SCHEDULABLE`
/// (Asyncify) is suspended at its next `ferry.yield` once its slice is over and goes to the back
/// of the run queue; one that waits for a message in `ferry.receive_wait` is parked, holding no
/// kernel thread, until a message is posted to its mailbox. Suspending means unwinding the
/// guest's call stack into its linear memory, so a parked guest costs its memory and nothing
/// else: no kernel thread, no interpreter stack.
///
/// Slices end only at yield points, as with any user-level threads package: a guest that never
/// yields keeps its kernel thread until it finishes or a limit (fuel, deadline) stops it. A guest
/// not built to be suspended runs its whole call in one slice, and `receive_wait` blocks its
/// kernel thread, as a blocking system call blocks a many-to-one process.
///
/// Call ``shutdown()`` when done: the kernel threads keep the scheduler alive until then.
public final class GuestScheduler: @unchecked Sendable {
    // Sendable: `runnable`, `parked`, `stopping` and `counts` are guarded by `condition`; a
    // task is touched by one kernel thread at a time, handed over through the run queue.

    /// What the scheduler has done so far.
    public struct Counts: Sendable, Equatable {
        /// Slices run.
        public var slices = 0
        /// Slices that ended at a yield because their time was up.
        public var preemptions = 0
        /// Times a guest was parked waiting for a message.
        public var parks = 0
        /// Guests that finished (with a result or stopped).
        public var finished = 0
    }

    public let kernelThreads: Int
    public let timeSlice: Duration
    private let condition = NSCondition()
    private var runnable: [GuestTask] = []
    private var nextRunnable = 0
    private var parked: [ObjectIdentifier: GuestTask] = [:]
    private var stopping = false
    private var running = 0
    private var counts = Counts()

    /// Starts `kernelThreads` threads that run guests `timeSlice` at a time.
    public init(kernelThreads: Int = 2, timeSlice: Duration = .milliseconds(2)) {
        precondition(kernelThreads > 0, "a scheduler needs at least one kernel thread")
        self.kernelThreads = kernelThreads
        self.timeSlice = timeSlice
        for index in 0..<kernelThreads {
            let thread = Thread { [self] in self.runLoop() }
            thread.name = "ferry-guest-\(index)"
            // Host calls re-enter the interpreter on this stack; give it room.
            thread.stackSize = 8 << 20
            self.running += 1
            thread.start()
        }
    }

    /// Queues a call of `export` in a fresh instance of `module`. The instance is made on the
    /// kernel thread that first runs it.
    @discardableResult
    public func spawn(
        _ module: GuestModule,
        export: String,
        arguments: [Value] = [],
        limits: GuestLimits = GuestLimits(),
        environment: GuestEnvironment = GuestEnvironment()
    ) -> GuestTask {
        let task = GuestTask(
            module: module,
            export: export,
            arguments: arguments,
            limits: limits,
            environment: environment
        )
        environment.mailbox.setArrivalHandler { [weak self, weak task] in
            guard let self, let task else { return }
            self.wake(task)
        }
        self.condition.lock()
        defer { self.condition.unlock() }
        guard !self.stopping else {
            task.finish(.failure(GuestError.schedulerStopped))
            return task
        }
        self.runnable.append(task)
        self.condition.signal()
        return task
    }

    /// What the scheduler has done so far.
    public var statistics: Counts {
        self.condition.lock()
        defer { self.condition.unlock() }
        return self.counts
    }

    /// Stops the kernel threads once their current slices end; guests not finished fail with
    /// ``GuestError/schedulerStopped``.
    public func shutdown() {
        self.condition.lock()
        self.stopping = true
        self.condition.broadcast()
        while self.running > 0 { self.condition.wait() }
        let unfinished = self.runnable[self.nextRunnable...] + self.parked.values
        self.runnable = []
        self.nextRunnable = 0
        self.parked = [:]
        self.condition.unlock()
        for task in unfinished { task.finish(.failure(GuestError.schedulerStopped)) }
    }

    private func runLoop() {
        while let task = self.next() {
            let outcome = task.runSlice(self.timeSlice)
            self.condition.lock()
            self.counts.slices += 1
            var result: Result<[Value], any Error>?
            switch outcome {
            case .finished(let value):
                self.counts.finished += 1
                result = value
            case .endOfSlice:
                self.counts.preemptions += 1
                self.runnable.append(task)
                self.condition.signal()
            case .waitingForMessage:
                self.counts.parks += 1
                // A message posted while the slice ended must not be missed: look once more, under the lock.
                if task.environment.mailbox.hasMessages {
                    self.runnable.append(task)
                    self.condition.signal()
                } else {
                    self.parked[ObjectIdentifier(task)] = task
                }
            }
            self.condition.unlock()
            // After the counts, so that whoever awaits the result sees them include it.
            if let result { task.finish(result) }
        }
        self.condition.lock()
        self.running -= 1
        self.condition.broadcast()
        self.condition.unlock()
    }

    private func next() -> GuestTask? {
        self.condition.lock()
        defer { self.condition.unlock() }
        while self.nextRunnable == self.runnable.count, !self.stopping { self.condition.wait() }
        guard !self.stopping else { return nil }
        let task = self.runnable[self.nextRunnable]
        self.nextRunnable += 1
        // Drop the taken front now and then, so the queue does not grow without end.
        if self.nextRunnable > 1024, self.nextRunnable * 2 > self.runnable.count {
            self.runnable.removeFirst(self.nextRunnable)
            self.nextRunnable = 0
        }
        return task
    }

    private func wake(_ task: GuestTask) {
        self.condition.lock()
        if let task = self.parked.removeValue(forKey: ObjectIdentifier(task)) {
            self.runnable.append(task)
            self.condition.signal()
        }
        self.condition.unlock()
    }
}

/// One guest run by a ``GuestScheduler``: a call of one export in its own instance.
public final class GuestTask: @unchecked Sendable {
    // Sendable: `instance` and `started` are used only by the kernel thread running the task;
    // the result is guarded by its lock.
    let module: GuestModule
    let export: String
    let arguments: [Value]
    let limits: GuestLimits
    let environment: GuestEnvironment
    private var instance: GuestInstance?
    private var started = false
    private let result = NIOLockedValueBox<
        (value: Result<[Value], any Error>?, waiters: [CheckedContinuation<[Value], any Error>])
    >((nil, []))

    init(module: GuestModule, export: String, arguments: [Value], limits: GuestLimits, environment: GuestEnvironment) {
        self.module = module
        self.export = export
        self.arguments = arguments
        self.limits = limits
        self.environment = environment
    }

    /// The guest's mailbox: post to it to wake a guest waiting in `receive_wait`.
    public var mailbox: GuestMailbox { self.environment.mailbox }

    /// Whether the call has finished, with a result or stopped.
    public var isFinished: Bool { self.result.withLockedValue { $0.value != nil } }

    /// The call's results, once it finishes.
    ///
    /// - Throws: ``GuestStop`` when the guest was stopped, ``GuestError`` when it could not run.
    public func value() async throws -> [Value] {
        try await withCheckedThrowingContinuation { continuation in
            let done = self.result.withLockedValue { state -> Result<[Value], any Error>? in
                if state.value == nil { state.waiters.append(continuation) }
                return state.value
            }
            if let done { continuation.resume(with: done) }
        }
    }

    enum SliceOutcome {
        case finished(Result<[Value], any Error>)
        case endOfSlice
        case waitingForMessage
    }

    /// Runs the guest until its call returns or it is suspended. The instance (its memory) goes
    /// as soon as the call is over.
    func runSlice(_ slice: Duration) -> SliceOutcome {
        do {
            let instance = try self.instance ?? GuestInstance(module: module, limits: limits, environment: environment)
            self.instance = instance
            switch try instance.runSlice(self.export, self.arguments, for: slice, resuming: self.started) {
            case .finished(let values):
                self.instance = nil
                return .finished(.success(values))
            case .endOfSlice:
                self.started = true
                return .endOfSlice
            case .waitingForMessage:
                self.started = true
                return .waitingForMessage
            }
        } catch {
            self.instance = nil
            return .finished(.failure(error))
        }
    }

    func finish(_ value: Result<[Value], any Error>) {
        let waiters = self.result.withLockedValue { state in
            guard state.value == nil else { return [CheckedContinuation<[Value], any Error>]() }
            state.value = value
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(with: value) }
    }
}

extension GuestInstance {
    enum SliceResult {
        case finished([Value])
        case endOfSlice
        case waitingForMessage
    }

    /// Whether the guest was built to be suspended (`FERRY_SCHEDULABLE` in `Guests/ferry.h`).
    var isSchedulable: Bool {
        self.instance.exports[function: "ferry_schedulable"] != nil
            && self.instance.exports[function: "asyncify_start_unwind"] != nil
    }

    /// Calls `name` for at most `slice` (to the next yield after it), or goes on with a call that
    /// was suspended.
    func runSlice(_ name: String, _ arguments: [Value], for slice: Duration, resuming: Bool) throws -> SliceResult {
        let schedulable = self.isSchedulable
        self.suspension.sliceEnd = schedulable ? ContinuousClock.now + slice : nil
        defer { self.suspension.sliceEnd = nil }
        if resuming {
            self.suspension.mode = .rewinding
            try self.export("asyncify_start_rewind").invoke([.i32(self.suspension.buffer)])
        }
        let results = try self.invoke(name, arguments)
        guard self.suspension.mode == .unwinding else { return .finished(results) }
        try self.export("asyncify_stop_unwind").invoke([])
        self.suspension.mode = .normal
        return self.suspension.reason == .waitingForMessage ? .waitingForMessage : .endOfSlice
    }
}
