import CFerryLinux
import FerryPosix
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
/// Slices end only at yield points, as with any user-level threads package. A module Ferry made
/// movable (``GuestModule/movable()``) has one at every loop and call, so its slices end on time
/// whatever it runs; a guest built with Asyncify yields at `ferry.yield`; any other guest runs
/// its whole call in one slice, and `receive_wait` blocks its kernel thread, as a blocking
/// system call blocks a many-to-one process.
///
/// A guest can also be **held**: taken out of the run queue, its stack unwound, so that its
/// state can be captured and moved (``requestCapture(_:)``, or the guest's own `ferry.go`).
/// The task's ``GuestTask/onHold`` hears of it; ``resume(_:goResult:)`` puts it back,
/// ``release(_:with:)`` ends it here, and ``adopt(_:)`` runs one that arrived from elsewhere.
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
        /// Times a guest was held for a capture or a move.
        public var holds = 0
    }

    public let kernelThreads: Int
    public let timeSlice: Duration
    /// The engine its guests run on.
    public let engine: GuestEngine
    private let condition = NSCondition()
    /// The run queue from `nextRunnable` on; a slot is emptied when its task is taken, so that a
    /// task that ended is not kept alive by the queue it left.
    private var runnable: [GuestTask?] = []
    private var nextRunnable = 0
    private var parked: [ObjectIdentifier: GuestTask] = [:]
    private var held: [ObjectIdentifier: GuestTask] = [:]
    /// The tasks in a slice now, which the ticker brings to a safe point once their slice is over.
    private var inSlice: [ObjectIdentifier: GuestTask] = [:]
    private var stopping = false
    private var running = 0
    private var counts = Counts()

    /// The nice value of the threads that run guests (the node's own threads keep 0).
    public static let guestNice: Int32 = 5

    /// Starts `kernelThreads` threads that run guests on `engine`, `timeSlice` at a time; each
    /// calls `onThreadStart` first (a node's `--cpus` puts them under its quota there).
    public init(
        kernelThreads: Int = 2,
        timeSlice: Duration = .milliseconds(2),
        engine: GuestEngine = .current,
        onThreadStart: @escaping @Sendable () -> Void = {}
    ) {
        precondition(kernelThreads > 0, "a scheduler needs at least one kernel thread")
        self.kernelThreads = kernelThreads
        self.timeSlice = timeSlice
        self.engine = engine
        for index in 0..<kernelThreads {
            let thread = Thread { [self] in
                // Guests yield to the node itself: on a CPU the guests fill (a `--cpus` quota, a
                // busy machine), the threads that renew the node's claims and answer its peers
                // still run, so spinning guests cannot make the node lose them.
                setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(ferry_current_thread_id()), Self.guestNice)
                // Foundation keeps `Thread.name` to itself on Linux; the kernel's name is what
                // `top -H` and /proc show (named once its priority is set, so a thread so named
                // has it).
                ferry_set_thread_name("ferry-guest-\(index)")
                onThreadStart()
                self.runLoop()
            }
            // Host calls re-enter the interpreter on this stack; give it room.
            thread.stackSize = 8 << 20
            self.running += 1
            thread.start()
        }
        let ticker = Thread { [self] in
            ferry_set_thread_name("ferry-guest-tick")
            self.tick()
        }
        self.running += 1
        ticker.start()
    }

    /// A movable guest tests its safe-point flag at every loop and call but never the clock:
    /// every time slice, this raises the flag of each guest in a slice, and the safe point ends
    /// the slice if it is over.
    private func tick() {
        self.condition.lock()
        while !self.stopping {
            if self.inSlice.isEmpty {
                self.condition.wait()
                continue
            }
            self.condition.unlock()
            Thread.sleep(forTimeInterval: self.timeSlice.inSeconds)
            self.condition.lock()
            for task in self.inSlice.values { task.interrupt.poke() }
        }
        self.running -= 1
        self.condition.broadcast()
        self.condition.unlock()
    }

    /// Queues a call of `export` in a fresh instance of `module`. The instance is made on the
    /// kernel thread that first runs it.
    @discardableResult
    public func spawn(
        _ module: GuestModule,
        export: String,
        arguments: [Value] = [],
        limits: GuestLimits = GuestLimits(),
        environment: GuestEnvironment = GuestEnvironment(),
        resultBytes: Int = 0,
        start: Bool = true,
        onHold: (@Sendable (GuestTask, GuestTask.Hold) -> Void)? = nil
    ) -> GuestTask {
        let task = GuestTask(
            module: module,
            export: export,
            arguments: arguments,
            limits: limits,
            environment: environment,
            engine: self.engine,
            resultBytes: resultBytes,
            onHold: onHold
        )
        if start { self.enqueue(task) }
        return task
    }

    /// Queues a task made elsewhere (``adopt(_:)``).
    func enqueue(_ task: GuestTask) {
        task.environment.mailbox.setArrivalHandler { [weak self, weak task] in
            guard let self, let task else { return }
            self.wake(task)
        }
        self.condition.lock()
        defer { self.condition.unlock() }
        guard !self.stopping else {
            task.finish(.failure(GuestError.schedulerStopped))
            return
        }
        self.runnable.append(task)
        self.condition.broadcast()
    }

    /// Asks for `task` to be held at its next safe point (at once when it is parked or queued):
    /// its ``GuestTask/onHold`` is then told ``GuestTask/Hold/capture``. A guest that cannot come
    /// to a safe point (no Asyncify, no movable instrumentation) is never held; see
    /// ``GuestInterrupt/refusal``.
    public func requestCapture(_ task: GuestTask) {
        task.interrupt.requestCapture()
        self.condition.lock()
        let parked = self.parked.removeValue(forKey: ObjectIdentifier(task))
        parked?.isParked = false
        if parked != nil {
            self.held[ObjectIdentifier(task)] = task
            self.counts.holds += 1
        }
        self.condition.unlock()
        if let parked {
            parked.interrupt.cancel()
            parked.onHold?(parked, .capture)
        }
    }

    /// Puts a held task back in the run queue: it rewinds to where it was. A guest held in
    /// `ferry.go` sees `goResult` returned there.
    public func resume(_ task: GuestTask, goResult: Int32 = -1) {
        self.condition.lock()
        defer { self.condition.unlock() }
        guard self.held.removeValue(forKey: ObjectIdentifier(task)) != nil else { return }
        task.prepareToResume(goResult: goResult)
        guard !self.stopping else {
            task.finish(.failure(GuestError.schedulerStopped))
            return
        }
        self.runnable.append(task)
        self.condition.broadcast()
    }

    /// Ends a held task here, with `result` for those who await it (its state went elsewhere).
    public func release(_ task: GuestTask, with result: Result<[Value], any Error>) {
        self.condition.lock()
        let removed = self.held.removeValue(forKey: ObjectIdentifier(task)) != nil
        self.condition.unlock()
        guard removed else { return }
        task.dropInstance()
        task.finish(result)
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
        let unfinished = self.runnable[self.nextRunnable...].compactMap { $0 } + self.parked.values + self.held.values
        self.runnable = []
        self.nextRunnable = 0
        self.parked = [:]
        self.held = [:]
        self.condition.unlock()
        for task in unfinished { task.finish(.failure(GuestError.schedulerStopped)) }
    }

    private func runLoop() {
        while let task = self.next() {
            // A queued guest asked for is held without running again: its stack is unwound already.
            let outcome: GuestTask.SliceOutcome
            if task.isSuspended && task.interrupt.take() {
                outcome = .held(.capture)
            } else {
                self.condition.lock()
                self.inSlice[ObjectIdentifier(task)] = task
                self.condition.broadcast()
                self.condition.unlock()
                outcome = task.runSlice(self.timeSlice)
            }
            self.condition.lock()
            self.inSlice[ObjectIdentifier(task)] = nil
            self.counts.slices += 1
            var result: Result<[Value], any Error>?
            var hold: GuestTask.Hold?
            var pause: Duration?
            switch outcome {
            case .held(let reason):
                self.counts.holds += 1
                self.held[ObjectIdentifier(task)] = task
                hold = reason
            case .finished(let value):
                self.counts.finished += 1
                result = value
            case .endOfSlice:
                self.counts.preemptions += 1
                let throttle = task.throttlePercent
                if throttle > 0 {
                    // Kept out of the queue for its share: `throttle` percent of its time waiting.
                    pause = self.timeSlice * (Double(throttle) / Double(100 - throttle))
                } else {
                    self.runnable.append(task)
                    self.condition.broadcast()
                }
            case .waitingForMessage:
                self.counts.parks += 1
                // A message posted while the slice ended must not be missed: look once more, under the lock.
                if task.environment.mailbox.hasMessages {
                    self.runnable.append(task)
                    self.condition.broadcast()
                } else if task.interrupt.take() {
                    // Asked for while it ran to its wait, before it was parked: held now, or never.
                    self.counts.holds += 1
                    self.held[ObjectIdentifier(task)] = task
                    hold = .capture
                } else {
                    self.parked[ObjectIdentifier(task)] = task
                    task.isParked = true
                }
            }
            self.condition.unlock()
            // After the counts, so that whoever awaits the result sees them include it.
            if let result { task.finish(result) }
            if let hold { task.onHold?(task, hold) }
            if let pause {
                DispatchQueue.global().asyncAfter(deadline: .now() + pause.inSeconds) { self.enqueue(task) }
            }
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
        let task = self.runnable[self.nextRunnable]!
        self.runnable[self.nextRunnable] = nil
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
            task.isParked = false
            self.runnable.append(task)
            self.condition.broadcast()
        }
        self.condition.unlock()
    }
}
