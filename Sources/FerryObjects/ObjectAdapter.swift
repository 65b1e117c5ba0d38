import FerryEndpoints
import FerryWire
import Logging
import NIOConcurrencyHelpers

/// Hosts objects under one ``ObjectPolicy``: activates them on first call (from the store, when
/// persistent), runs their invocations under the threading policy, deactivates them when idle or
/// when too many are active, and moves them. It knows nothing of their interfaces: it only hands
/// method names and arguments to a servant.
public final class ObjectAdapter: Sendable {
    public let name: String
    public let policy: ObjectPolicy
    public let types: [String: ObjectType]
    let store: (any ObjectStorage)?
    /// Whether callers may read an object's state with ``stateMethod``: a segment process's
    /// adapter, which its node reads state through.
    let servesState: Bool
    /// The method a segment process answers with its object's state.
    static let stateMethod = "ferry.state"
    let logger: Logger
    /// The `single` policy's one gate.
    private let adapterGate: InvocationGate?
    private let slots = NIOLockedValueBox(Slots())
    private let directoryBox = NIOLockedValueBox<ObjectDirectory?>(nil)

    enum Slot {
        case active(Activation)
        /// Being made; calls wait for it.
        case activating(Task<Void, any Error>)
        /// Being deactivated or moved; calls wait, then look again.
        case leaving(Task<Void, Never>)
        /// Moved to another node: calls are sent on there.
        case moved(ObjectBinding)
    }

    struct Slots {
        var byID: [String: Slot] = [:]
        /// Set at shutdown: nothing is activated any more.
        var closing = false
    }

    /// What becomes of an object that is taken out of service.
    enum Retirement: Sendable {
        /// It serves again, here (a save or a move failed).
        case stays
        /// It is gone from this node.
        case gone
        /// It went to another node; later calls are forwarded there.
        case moved(ObjectBinding)
    }

    /// - Parameter store: where persistent objects are kept; required when the policy is persistent.
    public init(
        name: String,
        policy: ObjectPolicy,
        types: [ObjectType],
        store: (any ObjectStorage)? = nil,
        servesState: Bool = false,
        logger: Logger = Logger(label: "ferry.objects")
    ) throws {
        if policy.activation == .persistent, store == nil {
            throw ErrorMessage(
                code: .invalidArgument,
                message: "adapter '\(name)' is persistent but has no object store to keep its objects in"
            )
        }
        if policy.isolation == .segment, let type = types.first(where: { $0.segmentLauncher == nil }) {
            throw ErrorMessage(
                code: .invalidArgument,
                message:
                    "adapter '\(name)' isolates objects in segments, but type '\(type.name)' has no segment launcher"
            )
        }
        self.servesState = servesState
        self.name = name
        self.policy = policy
        self.types = Dictionary(types.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.store = store
        self.logger = logger
        self.adapterGate = policy.threading == .single ? InvocationGate() : nil
    }

    var directory: ObjectDirectory {
        self.directoryBox.withLockedValue { box in
            if let directory = box { return directory }
            let local = ObjectDirectory(
                registry: nil,
                node: ServiceEndpoint(host: "127.0.0.1", port: 0),
                logger: self.logger
            )
            box = local
            return local
        }
    }

    func attach(_ directory: ObjectDirectory) {
        self.directoryBox.withLockedValue { $0 = directory }
    }

    /// How many objects are active now.
    public var activeCount: Int {
        self.slots.withLockedValue { slots in
            slots.byID.values.count { if case .active = $0 { true } else { false } }
        }
    }

    // MARK: Calls

    /// Runs one invocation of `id`, activating it first when needed.
    ///
    /// - Parameters:
    ///   - epoch: the activation the caller is bound to, or 0.
    ///   - deadline: a call that cannot start by then is not started.
    /// - Throws: ``ErrorMessage`` when the call was refused or the method failed.
    public func call(
        _ id: String,
        method: String,
        arguments: ObjectValue,
        epoch: UInt64 = 0,
        deadline: ContinuousClock.Instant? = nil
    ) async throws -> (ObjectValue, epoch: UInt64) {
        do {
            return try await self.run(id, method: method, arguments: arguments, epoch: epoch, deadline: deadline)
        } catch let failure as InvocationFailure {
            throw failure.error
        } catch let elsewhere as ObjectElsewhere {
            throw ErrorMessage(code: .notFound, message: "'\(id)' is not here: it is at \(elsewhere.binding)")
        }
    }

    /// ``call(_:method:arguments:epoch:deadline:)`` for the server, which must know whether the
    /// method ran.
    ///
    /// - Throws: ``ObjectElsewhere`` when another node has the object; ``InvocationFailure`` when
    ///   the method ran and failed; ``ErrorMessage`` when the call was refused before it ran.
    func run(
        _ id: String,
        method: String,
        arguments: ObjectValue,
        epoch: UInt64,
        deadline: ContinuousClock.Instant?
    ) async throws -> (ObjectValue, epoch: UInt64) {
        let activation = try await self.enter(id)
        defer { self.exit(activation) }
        guard epoch == 0 || epoch == activation.epoch else {
            throw ErrorMessage(
                code: .staleEpoch,
                message:
                    "the binding names epoch \(epoch) of '\(id)', but its activation here is epoch \(activation.epoch); look the name up again"
            )
        }
        let gate = self.adapterGate ?? activation.gate
        if let gate { await gate.enter() }
        let answer: ObjectValue
        let save: SaveTicket?
        do {
            defer { gate?.leave() }
            if let deadline, ContinuousClock.now > deadline {
                throw ErrorMessage(
                    code: .deadlineExceeded,
                    message: "the call \(id).\(method) waited past its deadline for its turn and was not run"
                )
            }
            if self.servesState, method == Self.stateMethod {
                return (
                    .bytes(try await self.invoke("\(id).\(method)") { try await activation.servant.state() }),
                    activation.epoch
                )
            }
            answer = try await self.invoke("\(id).\(method)") {
                try await activation.servant.invoke(method, arguments: arguments)
            }
            // The state is read and queued while the call still holds its turn, so saves are
            // stored in the order the calls ran; the wait for the fsync is outside it.
            save = try await self.queueSave(activation)
        } catch let error as SegmentFailure {
            // The servant's process is gone: drop the activation, so the next call starts a new one.
            await self.drop(activation, reason: "\(error)")
            throw InvocationFailure(error: ErrorMessage(code: .segmentFailed, message: "\(error)"))
        }
        if let save {
            do {
                try await save.wait()
            } catch {
                throw InvocationFailure(
                    error: ErrorMessage(
                        code: (error as? ErrorMessage)?.code ?? .unavailable,
                        message: "\(id).\(method) ran, but its change was not saved: \(error)"
                    )
                )
            }
        }
        return (answer, activation.epoch)
    }

    /// Runs a servant's method; its failure becomes an ``InvocationFailure`` (it ran), except a
    /// segment's death, which the caller handles.
    private func invoke<T>(_ call: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as ErrorMessage {
            throw InvocationFailure(error: error)
        } catch let error as SegmentFailure {
            throw error
        } catch let error as InvocationFailure {
            throw error
        } catch {
            throw InvocationFailure(error: ErrorMessage(code: .internalError, message: "\(call) failed: \(error)"))
        }
    }

    /// With write-through persistence, reads the object's state after a call and queues it for
    /// the store's next group commit.
    private func queueSave(_ activation: Activation) async throws -> SaveTicket? {
        guard self.policy.writesThrough, let store = self.store else { return nil }
        // Calls that run at once take turns here, so their states are queued in the order read.
        if let order = activation.saveOrder { await order.enter() }
        defer { activation.saveOrder?.leave() }
        let state = try await self.invoke("saving '\(activation.id)'") { try await activation.servant.state() }
        let ticket = SaveTicket()
        store.enqueueSave(activation.id, type: activation.type, state: state, epoch: activation.epoch) {
            ticket.finish($0)
        }
        return ticket
    }

    /// Waits until `id` is active here and counts one call in.
    func enter(_ id: String) async throws -> Activation {
        while true {
            enum Next {
                case entered(Activation)
                case wait(Task<Void, any Error>)
                case waitLeaving(Task<Void, Never>)
                case movedAway(ObjectBinding)
            }
            let next: Next = try self.slots.withLockedValue { slots in
                switch slots.byID[id] {
                case .active(let activation):
                    activation.inFlight += 1
                    return .entered(activation)
                case .activating(let task):
                    return .wait(task)
                case .leaving(let task):
                    return .waitLeaving(task)
                case .moved(let binding):
                    guard self.policy.activation == .persistent, self.directory.registry != nil else {
                        throw ObjectElsewhere(binding: binding)
                    }
                    return .movedAway(binding)
                case nil:
                    guard !slots.closing else {
                        throw ErrorMessage(
                            code: .unavailable,
                            message:
                                "this node is shutting down and activates no objects; '\(id)' cannot be called here now"
                        )
                    }
                    let task = Task { try await self.activate(id, state: nil, takeover: nil) }
                    slots.byID[id] = .activating(task)
                    return .wait(task)
                }
            }
            switch next {
            case .entered(let activation): return activation
            case .wait(let task): try await task.value
            case .waitLeaving(let task): await task.value
            case .movedAway(let binding):
                // The claim, not this note, says where the object is: the node it moved to may
                // have died since, and then no node holds it and it may be activated here.
                if let holder = try await self.directory.holder(of: id) {
                    throw ObjectElsewhere(binding: holder.node == binding.node ? binding : holder)
                }
                self.slots.withLockedValue { slots in
                    if case .moved(let note) = slots.byID[id], note == binding { slots.byID[id] = nil }
                }
            }
        }
    }

    func exit(_ activation: Activation) {
        let waiters: [CheckedContinuation<Void, Never>] = self.slots.withLockedValue { _ in
            activation.inFlight -= 1
            activation.calls += 1
            activation.lastUse = .now
            guard activation.inFlight == 0 else { return [] }
            defer { activation.drainWaiters = [] }
            return activation.drainWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    // MARK: Activation

    /// Makes `id` active now, as its first call would (to warm objects up).
    public func activate(_ id: String) async throws {
        self.exit(try await self.enter(id))
    }

    /// Makes `id` active: claims it and takes the next epoch (persistent), loads or takes its
    /// state, makes the servant. Runs as the slot's `activating` task; on failure the slot is
    /// emptied again.
    private func activate(_ id: String, state given: [UInt8]?, takeover: UInt64?) async throws {
        var lease: UInt64?
        do {
            let typeName = String(ObjectNames.type(of: id))
            guard let type = self.types[typeName] else {
                throw ErrorMessage(code: .notFound, message: "adapter '\(self.name)' hosts no type '\(typeName)'")
            }
            try await self.makeRoom(for: id)
            let epoch: UInt64
            var state = given
            if self.policy.activation == .persistent, let store = self.store {
                lease = try await self.directory.claim(id, takeover: takeover)
                epoch = try await store.nextEpoch(id)
                if state == nil { state = try await store.load(id)?.state }
            } else {
                epoch = self.directory.nextLocalEpoch()
            }
            let servant = try await self.makeServant(type, id: id, state: state)
            let activation = Activation(id: id, type: typeName, servant: servant, epoch: epoch, lease: lease ?? 0)
            activation.gate = self.policy.threading == .perObject ? InvocationGate() : nil
            activation.saveOrder =
                self.policy.writesThrough && self.policy.threading == .perInvocation ? InvocationGate() : nil
            self.slots.withLockedValue { $0.byID[id] = .active(activation) }
            // A claim lost while this activation was being made found no active object to drop:
            // look once it is in place (a loss from now on finds it).
            if let lease, lease != 0, self.directory.lease(of: id) != lease {
                await self.drop(activation, reason: "its claim ran out while it was being activated")
                throw ErrorMessage(
                    code: .unavailable,
                    message: "the claim on '\(id)' ran out while it was being activated; try again"
                )
            }
            self.logger.debug("activated '\(id)' (epoch \(epoch), \(self.policy))")
        } catch {
            self.slots.withLockedValue { $0.byID[id] = nil }
            if lease != nil { await self.directory.release(id) }
            throw error
        }
    }

    private func makeServant(_ type: ObjectType, id: String, state: [UInt8]?) async throws -> any ObjectServant {
        do {
            if self.policy.isolation == .segment, let launcher = type.segmentLauncher {
                return try await SegmentServant.launch(id: id, state: state, launcher: launcher)
            }
            return try await type.make(id, state)
        } catch let error as ErrorMessage {
            throw error
        } catch {
            throw ErrorMessage(code: .internalError, message: "cannot activate '\(id)': \(error)")
        }
    }

    /// Deactivates the least recently used idle object when the adapter is at its limit.
    private func makeRoom(for id: String) async throws {
        enum Room {
            case enough
            case evict(String)
            case full
        }
        let room: Room = self.slots.withLockedValue { slots in
            var active: [Activation] = []
            var activating = 0
            for slot in slots.byID.values {
                switch slot {
                case .active(let activation): active.append(activation)
                case .activating: activating += 1
                default: break
                }
            }
            // `activating` counts this object's own slot too.
            guard active.count + activating > self.policy.maxActive else { return .enough }
            guard let victim = active.filter({ $0.inFlight == 0 }).min(by: { $0.lastUse < $1.lastUse }) else {
                return .full
            }
            return .evict(victim.id)
        }
        switch room {
        case .enough: return
        case .evict(let victim): await self.deactivate(victim, onlyIfIdle: true)
        case .full:
            throw ErrorMessage(
                code: .unavailable,
                message:
                    "adapter '\(self.name)' has its limit of \(self.policy.maxActive) objects active, all busy; '\(id)' cannot be activated now, try again"
            )
        }
    }

    /// Activates `id` here with the state a moving node sent, taking its lease over.
    func adopt(_ id: String, state: [UInt8]?, takeover: UInt64) async throws -> Activation {
        let task: Task<Void, any Error> = try self.slots.withLockedValue { slots in
            switch slots.byID[id] {
            case nil, .moved: break
            default: throw ErrorMessage(code: .invalidArgument, message: "'\(id)' is already active on this node")
            }
            let task = Task { try await self.activate(id, state: state, takeover: takeover == 0 ? nil : takeover) }
            slots.byID[id] = .activating(task)
            return task
        }
        try await task.value
        let activation = try await self.enter(id)
        self.exit(activation)
        return activation
    }

    // MARK: Leaving

    /// Takes `id` out of service: new calls wait, calls in flight finish, then `body` says what
    /// becomes of it.
    ///
    /// - Returns: nil when `id` was not active (or, with `onlyIfIdle`, was busy).
    func retire(
        _ id: String,
        onlyIfIdle: Bool,
        _ body: @escaping @Sendable (Activation) async -> Retirement
    ) async -> Retirement? {
        let result = NIOLockedValueBox<Retirement?>(nil)
        let task: Task<Void, Never>? = self.slots.withLockedValue { slots in
            guard case .active(let activation) = slots.byID[id], !onlyIfIdle || activation.inFlight == 0 else {
                return nil
            }
            let task = Task {
                await self.drained(activation)
                let retirement = await body(activation)
                result.withLockedValue { $0 = retirement }
                self.slots.withLockedValue { slots in
                    switch retirement {
                    case .stays: slots.byID[id] = .active(activation)
                    case .gone: slots.byID[id] = nil
                    case .moved(let binding): slots.byID[id] = .moved(binding)
                    }
                }
            }
            slots.byID[id] = .leaving(task)
            return task
        }
        guard let task else { return nil }
        await task.value
        return result.withLockedValue { $0 }
    }

    private func drained(_ activation: Activation) async {
        await withCheckedContinuation { continuation in
            let now = self.slots.withLockedValue { _ in
                if activation.inFlight == 0 { return true }
                activation.drainWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Deactivates `id`: a persistent object's state goes to the store and its claim is given up.
    /// A state that cannot be saved keeps the object active (nothing is lost).
    @discardableResult
    public func deactivate(_ id: String, onlyIfIdle: Bool = false) async -> Bool {
        let retirement = await self.retire(id, onlyIfIdle: onlyIfIdle) { activation in
            if self.policy.activation == .persistent, let store = self.store {
                do {
                    let state = try await activation.servant.state()
                    try await store.save(id, type: activation.type, state: state, epoch: activation.epoch)
                } catch {
                    self.logger.error("cannot save '\(id)' while deactivating it: \(error); it stays active")
                    return .stays
                }
                await self.directory.release(id)
            }
            await (activation.servant as? SegmentServant)?.stop()
            self.logger.debug("deactivated '\(id)'")
            return .gone
        }
        if case .gone = retirement { return true }
        return false
    }

    /// Drops `activation` at once without saving: its claim is lost or its process died. A newer
    /// activation of the same object is left alone.
    func drop(_ activation: Activation, reason: String) async {
        let dropped = self.slots.withLockedValue { slots in
            guard case .active(let current) = slots.byID[activation.id], current === activation else { return false }
            slots.byID[activation.id] = nil
            return true
        }
        guard dropped else { return }
        self.logger.warning("dropped '\(activation.id)': \(reason)")
        if activation.lease != 0 { await self.directory.release(activation.id) }
        await (activation.servant as? SegmentServant)?.stop()
    }

    /// Drops the activation of `id` that holds `lease`, when its claim was lost.
    func drop(_ id: String, lease: UInt64, reason: String) async {
        let activation: Activation? = self.slots.withLockedValue { slots in
            guard case .active(let current) = slots.byID[id], current.lease == lease else { return nil }
            return current
        }
        if let activation { await self.drop(activation, reason: reason) }
    }

    /// Deactivates every object idle for longer than the idle timeout, every quarter of it,
    /// until cancelled.
    public func sweepIdle() async {
        let interval = max(self.policy.idleTimeout / 4, .milliseconds(10))
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let limit = ContinuousClock.now - self.policy.idleTimeout
            let idle = self.slots.withLockedValue { slots in
                slots.byID.compactMap { id, slot -> String? in
                    guard case .active(let activation) = slot, activation.inFlight == 0, activation.lastUse < limit
                    else { return nil }
                    return id
                }
            }
            for id in idle { await self.deactivate(id, onlyIfIdle: true) }
        }
    }

    /// Deactivates every object and activates none from now on (shutdown): persistent ones are
    /// saved.
    public func deactivateAll() async {
        let ids = self.slots.withLockedValue { slots in
            slots.closing = true
            return Array(slots.byID.keys)
        }
        for id in ids { await self.deactivate(id) }
    }

    /// The objects active or moved away, as they are now.
    func statuses() -> [ObjectStatus] {
        self.slots.withLockedValue { slots in
            slots.byID.compactMap { id, slot -> ObjectStatus? in
                switch slot {
                case .active(let activation):
                    self.status(id, epoch: activation.epoch, state: "active", calls: activation.calls)
                case .moved(let binding):
                    self.status(id, epoch: binding.epoch, state: "moved to \(binding.node)")
                default: nil
                }
            }
        }
    }

    /// A row of `ferry objects ls` for one of this adapter's objects; the server fills the node in.
    func status(_ id: String, epoch: UInt64, state: String, calls: UInt64 = 0) -> ObjectStatus {
        ObjectStatus(
            object: id,
            type: String(ObjectNames.type(of: id)),
            adapter: self.name,
            policy: self.policy.description,
            node: "",
            epoch: epoch,
            state: state,
            calls: calls
        )
    }

    /// The process id of `id`'s segment, when it is active in one.
    public func segmentProcessID(of id: String) -> Int32? {
        self.slots.withLockedValue { slots in
            guard case .active(let activation) = slots.byID[id] else { return nil }
            return (activation.servant as? SegmentServant)?.pid
        }
    }
}

/// A method ran and failed: its answer is kept in the call ledger like any other.
struct InvocationFailure: Error {
    var error: ErrorMessage
}

/// One active object. Its counters are guarded by its adapter's lock.
final class Activation: @unchecked Sendable {
    let id: String
    let type: String
    let servant: any ObjectServant
    let epoch: UInt64
    /// The claim's lease at the endpoint daemon; 0 when there is none.
    let lease: UInt64
    var gate: InvocationGate?
    /// With write-through persistence and calls that run at once: the turn to read and queue
    /// the state.
    var saveOrder: InvocationGate?
    var inFlight = 0
    var calls: UInt64 = 0
    var lastUse = ContinuousClock.now
    var drainWaiters: [CheckedContinuation<Void, Never>] = []

    init(id: String, type: String, servant: any ObjectServant, epoch: UInt64, lease: UInt64) {
        self.id = id
        self.type = type
        self.servant = servant
        self.epoch = epoch
        self.lease = lease
    }
}

/// A save queued for a group commit, awaited once the call has left its turn.
final class SaveTicket: Sendable {
    private struct State {
        var result: Result<Void, any Error>?
        var waiter: CheckedContinuation<Void, any Error>?
    }

    private let state = NIOLockedValueBox(State())

    func finish(_ result: Result<Void, any Error>) {
        let waiter = self.state.withLockedValue { state in
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: result)
    }

    func wait() async throws {
        try await withCheckedThrowingContinuation { continuation in
            let result = self.state.withLockedValue { state in
                if state.result == nil { state.waiter = continuation }
                return state.result
            }
            if let result { continuation.resume(with: result) }
        }
    }
}
