import Foundation
import NIOConcurrencyHelpers
import WasmKit

/// One guest run by a ``GuestScheduler``: a call of one export in its own instance.
public final class GuestTask: @unchecked Sendable {
    // Sendable: `instance` and `started` are used only by the kernel thread running the task, or
    // by whoever has it while the scheduler holds it; the result is guarded by its lock.

    /// Why a task was held.
    public enum Hold: Sendable, Equatable {
        /// ``GuestScheduler/requestCapture(_:)`` asked for it.
        case capture
        /// The guest called `ferry.go` (strong) or `ferry.go_weak` (weak) naming `node`.
        case move(node: String, strong: Bool)
    }

    public let module: GuestModule
    public let export: String
    public let arguments: [Value]
    public let limits: GuestLimits
    /// The engine it runs on.
    public let engine: GuestEngine
    public let environment: GuestEnvironment
    /// How many bytes of memory, at the address the call returns, to keep as its result
    /// (``resultMemory``); 0 keeps none.
    public let resultBytes: Int
    /// Requests to stop at the next safe point.
    public let interrupt = GuestInterrupt()
    /// Told, on a kernel thread of the scheduler, when the task is held.
    public let onHold: (@Sendable (GuestTask, Hold) -> Void)?
    private var instance: GuestInstance?
    private var started = false
    private let result = NIOLockedValueBox<
        (value: Result<[Value], any Error>?, waiters: [CheckedContinuation<[Value], any Error>])
    >((nil, []))
    private let memoryResult = NIOLockedValueBox<[UInt8]?>(nil)

    /// The ``resultBytes`` bytes at the address the call returned, once it finished.
    public var resultMemory: [UInt8]? { self.memoryResult.withLockedValue { $0 } }
    private let usage = NIOLockedValueBox<(cpu: Duration, memoryBytes: Int, firstSlice: ContinuousClock.Instant?)>(
        (.zero, 0, nil)
    )

    /// When the scheduler first ran the task (for a guest that moved: its first instruction here).
    public var firstSliceAt: ContinuousClock.Instant? { self.usage.withLockedValue { $0.firstSlice } }

    private let parkedFlag = NIOLockedValueBox(false)
    /// Where the instance's memory lies (``memoryRegion``).
    let region = NIOLockedValueBox<GuestMemoryRegion?>(nil)

    private let throttle = NIOLockedValueBox(0)
    /// The share of its time, in percent, the scheduler keeps the guest waiting after each slice
    /// (0–99): live migration's auto-converge slows a guest that writes faster than its pages go.
    public var throttlePercent: Int {
        get { self.throttle.withLockedValue { $0 } }
        set { self.throttle.withLockedValue { $0 = min(99, max(0, newValue)) } }
    }

    /// Whether the guest is parked, waiting for a message (it holds no kernel thread).
    public var isParked: Bool {
        get { self.parkedFlag.withLockedValue { $0 } }
        set { self.parkedFlag.withLockedValue { $0 = newValue } }
    }

    /// Time spent running the guest's slices so far.
    public var cpuTime: Duration { self.usage.withLockedValue { $0.cpu } }
    /// The guest's linear memory at the end of its last slice.
    public var memoryBytes: Int { self.usage.withLockedValue { $0.memoryBytes } }

    init(
        module: GuestModule,
        export: String,
        arguments: [Value],
        limits: GuestLimits,
        environment: GuestEnvironment,
        engine: GuestEngine,
        instance: GuestInstance? = nil,
        started: Bool = false,
        resultBytes: Int = 0,
        onHold: (@Sendable (GuestTask, Hold) -> Void)? = nil
    ) {
        self.onHold = onHold
        self.resultBytes = resultBytes
        self.module = module
        self.export = export
        self.arguments = arguments
        self.limits = limits
        self.environment = environment
        self.engine = engine
        self.started = started
        self.setInstance(instance)
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
        case held(Hold)
    }

    /// Whether the call started and is suspended (its stack unwound), not running.
    var isSuspended: Bool { self.started && self.instance != nil }

    /// Runs the guest until its call returns or it is suspended. The instance (its memory) goes
    /// as soon as the call is over.
    func runSlice(_ slice: Duration) -> SliceOutcome {
        let start = ContinuousClock.now
        // CPU time, not wall time: under a CPU quota a slice's thread waits part of its turn.
        let cpuStart = CPUTime.thread()
        self.usage.withLockedValue { $0.firstSlice = $0.firstSlice ?? start }
        defer {
            let bytes = self.instance?.memoryBytes
            let used = CPUTime.thread() - cpuStart
            self.usage.withLockedValue { usage in
                usage.cpu += used
                if let bytes { usage.memoryBytes = bytes }
            }
        }
        do {
            let instance =
                try self.instance
                ?? GuestInstance(
                    module: self.module,
                    limits: self.limits,
                    environment: self.environment,
                    engine: self.engine
                )
            if self.instance == nil { self.setInstance(instance) }
            switch try instance.runSlice(self.export, self.arguments, for: slice, resuming: self.started) {
            case .finished(let values):
                defer { self.setInstance(nil) }
                if self.resultBytes > 0 {
                    guard let address = values.first, case .i32(let offset) = address else {
                        throw GuestError.badArguments(
                            export: self.export,
                            reason: "it returned no address to read a result at"
                        )
                    }
                    let bytes = try instance.readMemory(offset: Int(offset), count: self.resultBytes)
                    self.memoryResult.withLockedValue { $0 = bytes }
                }
                return .finished(.success(values))
            case .endOfSlice:
                self.started = true
                return .endOfSlice
            case .waitingForMessage:
                self.started = true
                return .waitingForMessage
            case .held(let hold):
                self.started = true
                return .held(hold)
            }
        } catch {
            self.setInstance(nil)
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

    /// Before a held task runs again: the host call it was held in returns `goResult`.
    func prepareToResume(goResult: Int32) {
        self.instance?.suspension.resumeValue = goResult
    }

    func dropInstance() {
        self.setInstance(nil)
    }

    /// Sets the instance, and binds its safe-point flag to the interrupt (or unbinds it before
    /// the instance goes).
    private func setInstance(_ instance: GuestInstance?) {
        instance?.suspension.interrupt = self.interrupt
        self.interrupt.attach(instance?.suspension.flag)
        self.instance = instance
        let region = instance?.memoryRegion
        self.region.withLockedValue { $0 = region }
    }

    /// The instance of a held task, to capture its state; nil when it never started.
    var heldInstance: GuestInstance? { self.instance }
}

extension GuestInstance {
    enum SliceResult {
        case finished([Value])
        case endOfSlice
        case waitingForMessage
        case held(GuestTask.Hold)
    }

    /// Whether the guest can be suspended at the end of a slice: built with `FERRY_SCHEDULABLE`
    /// (`Guests/ferry.h`), or made movable by Ferry (it has a safe point at every loop and call).
    var isSchedulable: Bool {
        guard self.exports.hasFunction("asyncify_start_unwind") else { return false }
        return self.exports.hasFunction("ferry_schedulable") || self.module.isMovable
    }

    /// Calls `name` for at most `slice` (to the next yield after it), or goes on with a call that
    /// was suspended.
    func runSlice(_ name: String, _ arguments: [Value], for slice: Duration, resuming: Bool) throws -> SliceResult {
        let schedulable = self.isSchedulable
        self.suspension.sliceEnd = schedulable ? ContinuousClock.now + slice : nil
        self.suspension.sliceLength = slice
        defer { self.suspension.sliceEnd = nil }
        if resuming {
            self.suspension.mode = .rewinding
            try self.exports.call("asyncify_start_rewind", [.i32(self.suspension.buffer)])
        }
        let results = try self.invoke(name, arguments)
        guard self.suspension.mode == .unwinding else { return .finished(results) }
        try self.exports.call("asyncify_stop_unwind", [])
        self.suspension.mode = .normal
        switch self.suspension.reason {
        case .waitingForMessage: return .waitingForMessage
        case .capture: return .held(.capture)
        case .move(let node, let strong): return .held(.move(node: node, strong: strong))
        case .endOfSlice, .checkpoint: return .endOfSlice
        }
    }
}
