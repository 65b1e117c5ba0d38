import FerryGuest
import Foundation
import NIOConcurrencyHelpers

/// One process on this node: what it runs, its guest task, where it stands, and who waits for it.
final class HostedProcess: Sendable {
    enum State: Sendable, Equatable {
        /// Running, or waiting for a message (the scheduler knows which).
        case running
        /// Held for a move, or arriving (between the state's arrival and the commit).
        case moving
        case ended(ProcessOutcome)
        /// It went to another node.
        case movedAway(to: String)

        var name: String {
            switch self {
            case .running: "running"
            case .moving: "moving"
            case .ended(let outcome): outcome.failure == nil ? "exited" : "failed"
            case .movedAway: "moved"
            }
        }
    }

    /// How a wait ends.
    enum WaitResult: Sendable {
        case finished(ProcessOutcome)
        case moved(to: String)
    }

    let spec: ProcessSpec
    /// What runs: the module made movable, or the module itself when it cannot be.
    let module: GuestModule
    let log: ProcessLog
    /// The guest's directories on this node (its writable layers live in ``directory``).
    let directories: [GuestDirectory]
    /// Where this node keeps the process's layers and log.
    let directory: String
    /// What the node lends it: facilities, the cluster's kv, its connections.
    let services: ProcessServices
    /// Calls to it (`ferry send`), one at a time, held back while it moves.
    let calls: CallGate
    /// When it came to this node (spawned, arrived or recovered).
    let arrivedAt = ContinuousClock.now
    /// The node it came from, when it arrived by a move.
    let cameFrom: String?

    private struct Mutable {
        var state = State.running
        var epoch: UInt64
        var moves: Int
        var task: GuestTask?
        var cpuBefore: Duration
        var waiters: [CheckedContinuation<WaitResult, Never>] = []
        /// A move in progress waits here for the task to be held.
        var holdWaiter: CheckedContinuation<GuestTask.Hold?, Never>?
        /// Which wait the waiter is, so that the timeout of an earlier one never ends a later one.
        var holdRequest = 0
        var heldAt: ContinuousClock.Instant?
        /// It arrived by post-copy and some of its pages are still at the source.
        var fetchingPages = false
    }

    private let mutable: NIOLockedValueBox<Mutable>

    init(
        spec: ProcessSpec,
        module: GuestModule,
        log: ProcessLog,
        directories: [GuestDirectory],
        directory: String,
        services: ProcessServices,
        epoch: UInt64,
        moves: Int,
        cpuBefore: Duration,
        state: State = .running,
        cameFrom: String? = nil
    ) {
        self.cameFrom = cameFrom
        self.services = services
        self.calls = CallGate(closed: state == .moving)
        self.spec = spec
        self.module = module
        self.log = log
        self.directories = directories
        self.directory = directory
        self.mutable = NIOLockedValueBox(Mutable(state: state, epoch: epoch, moves: moves, cpuBefore: cpuBefore))
    }

    var name: String { self.spec.name }
    var state: State { self.mutable.withLockedValue { $0.state } }
    var epoch: UInt64 { self.mutable.withLockedValue { $0.epoch } }
    var moves: Int { self.mutable.withLockedValue { $0.moves } }
    var task: GuestTask? { self.mutable.withLockedValue { $0.task } }
    var heldAt: ContinuousClock.Instant? { self.mutable.withLockedValue { $0.heldAt } }
    var fetchingPages: Bool {
        get { self.mutable.withLockedValue { $0.fetchingPages } }
        set { self.mutable.withLockedValue { $0.fetchingPages = newValue } }
    }
    var cpuTime: Duration { self.mutable.withLockedValue { $0.cpuBefore + ($0.task?.cpuTime ?? .zero) } }

    func attach(_ task: GuestTask) {
        self.mutable.withLockedValue { $0.task = task }
    }

    func summary(node: String) -> ProcessSummary {
        let (state, task, epoch, moves) = self.mutable.withLockedValue { ($0.state, $0.task, $0.epoch, $0.moves) }
        var name = state.name
        if state == .running, task?.isParked == true { name = "waiting" }
        var detail: String?
        if case .ended(let outcome) = state {
            detail =
                outcome.failure ?? outcome.exitCode.map { "exit code \($0)" } ?? outcome.resultHex
                ?? outcome.values.joined(separator: " ")
        }
        if case .movedAway(let to) = state { detail = "now on \(to)" }
        return ProcessSummary(
            name: self.name,
            node: node,
            digest: self.spec.digest,
            state: name,
            epoch: epoch,
            memoryBytes: task?.memoryBytes ?? 0,
            cpuMilliseconds: Int(self.cpuTime.inMilliseconds),
            moves: moves,
            pinned: self.spec.isPinned ? true : nil,
            detail: detail
        )
    }

    // MARK: Moves

    /// Marks the process as moving; false when it is not running (ended, or moving already).
    func beginMove() -> Bool {
        self.mutable.withLockedValue { state in
            guard state.state == .running else { return false }
            state.state = .moving
            return true
        }
    }

    /// Asks for the task to be held (`request`), and waits until it is, or `timeout` passes. The
    /// wait is in place before the request: a parked task is held at once, inside it.
    func hold(timeout: Duration, request: () -> Void) async -> GuestTask.Hold? {
        await withCheckedContinuation { continuation in
            let number = self.mutable.withLockedValue { state in
                state.holdWaiter = continuation
                state.holdRequest += 1
                return state.holdRequest
            }
            request()
            Task {
                try? await Task.sleep(for: timeout)
                self.resumeHoldWaiter(nil, onlyRequest: number)
            }
        }
    }

    /// The scheduler held the task: tells a move waiting for it. Returns false when nobody asked
    /// (the guest called `ferry.go` itself).
    func held(_ hold: GuestTask.Hold) -> Bool {
        self.mutable.withLockedValue { $0.heldAt = .now }
        return self.resumeHoldWaiter(hold)
    }

    @discardableResult
    private func resumeHoldWaiter(_ hold: GuestTask.Hold?, onlyRequest: Int? = nil) -> Bool {
        guard
            let waiter = self.mutable.withLockedValue({ state -> CheckedContinuation<GuestTask.Hold?, Never>? in
                if let onlyRequest, onlyRequest != state.holdRequest { return nil }
                defer { state.holdWaiter = nil }
                return state.holdWaiter
            })
        else { return false }
        waiter.resume(returning: hold)
        return true
    }

    /// A move failed: the process runs here again.
    func moveAborted() {
        self.mutable.withLockedValue { state in
            if state.state == .moving { state.state = .running }
            state.heldAt = nil
        }
    }

    /// The process went to `node`: those waiting are told where, and a call waiting for its
    /// answer where that answer will be kept.
    func movedAway(to node: String) {
        let mailbox = self.task?.environment.mailbox
        self.settle(.movedAway(to: node), result: .moved(to: node))
        mailbox?.departed()
    }

    /// An arrival committed: it runs here now, at `epoch`.
    func committed(epoch: UInt64) {
        self.mutable.withLockedValue { state in
            state.epoch = epoch
            state.state = .running
        }
    }

    // MARK: Ends

    /// The process ended here; those waiting get its outcome.
    func ended(_ outcome: ProcessOutcome) {
        self.settle(.ended(outcome), result: .finished(outcome))
    }

    private func settle(_ final: State, result: WaitResult) {
        let waiters = self.mutable.withLockedValue { state -> [CheckedContinuation<WaitResult, Never>] in
            if case .ended = state.state { return [] }
            if case .movedAway = state.state { return [] }
            if let task = state.task { state.cpuBefore += task.cpuTime }
            state.task = nil
            state.state = final
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: result) }
        self.calls.shut()
        self.services.closeAll()
        // A move waiting for the task to be held learns that it never will be.
        self.resumeHoldWaiter(nil)
    }

    /// Until the process ends here or leaves.
    func wait() async -> WaitResult {
        await withCheckedContinuation { continuation in
            let now: WaitResult? = self.mutable.withLockedValue { state in
                switch state.state {
                case .ended(let outcome): return .finished(outcome)
                case .movedAway(let node): return .moved(to: node)
                case .running, .moving:
                    state.waiters.append(continuation)
                    return nil
                }
            }
            if let now { continuation.resume(returning: now) }
        }
    }
}

extension Duration {
    var inMilliseconds: Double {
        Double(self.components.seconds) * 1e3 + Double(self.components.attoseconds) / 1e15
    }

    /// Milliseconds to the microsecond, for reports.
    var reportedMilliseconds: Double { (self.inMilliseconds * 1000).rounded() / 1000 }
}
