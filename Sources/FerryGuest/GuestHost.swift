import FerryPosix
import Foundation
import NIOConcurrencyHelpers
import WasmKit

/// Messages between the host and one guest: the host posts to the inbox, the guest sends to the
/// outbox (the `ferry.send`, `ferry.receive` and `ferry.receive_wait` imports).
public final class GuestMailbox: @unchecked Sendable {
    // Sendable: the inbox and the arrival handler are guarded by `condition`.
    /// The largest message either side may pass.
    public static let maxMessageBytes = 1 << 20

    private let condition = NSCondition()
    private var inbox: [[UInt8]] = []
    /// Called after each post: a ``GuestScheduler`` wakes the guest if it is parked waiting.
    private var onArrival: (@Sendable () -> Void)?

    /// What a wait for the guest's answer came to.
    public enum Answer: Sendable, Equatable {
        case message([UInt8])
        case timedOut
        /// The process left this node while the call waited. With a ticket, its answer is kept
        /// under it where the process went (a strong move carries the obligation); without, it
        /// never comes (a weak move starts the program again).
        case departed(ticket: UInt64?)
        /// No answer is owed under that ticket here: it was taken, or given up.
        case notOwed
    }

    /// Whom the guest's next answers are for, in order, before any call waiting now: the guest
    /// answers calls in the order they came.
    public enum Owed: Codable, Sendable, Equatable {
        /// A call that gave up: its answer is dropped rather than given to the call after.
        case dropped
        /// A call that was waiting when the process moved: its answer is kept under this ticket
        /// until the call, still waiting at the node it went in at, fetches it.
        case kept(UInt64)
    }

    private struct Waiter {
        var number: Int
        /// Given when a move carries the mailbox, so that the answer can be kept for this call.
        var ticket: UInt64?
        var continuation: CheckedContinuation<Answer, Never>
    }

    private struct Outbox {
        var sent: [[UInt8]] = []
        /// Who waits for the next message (``nextSent(timeout:)``), by the number of its wait.
        var waiter: Waiter?
        var waits = 0
        var owed: [Owed] = []
        /// Answers kept for calls waiting elsewhere, by ticket, and those calls' fetches waiting.
        var kept: [UInt64: [UInt8]] = [:]
        var fetches: [UInt64: CheckedContinuation<Answer, Never>] = [:]
        /// The process left: waits and fetches here are told so.
        var departed = false
    }

    private let outbox = NIOLockedValueBox(Outbox())

    public init() {}

    /// Queues a message for the guest.
    public func post(_ message: [UInt8]) {
        self.condition.lock()
        self.inbox.append(message)
        let onArrival = self.onArrival
        self.condition.broadcast()
        self.condition.unlock()
        onArrival?()
    }

    /// Takes every message the guest has sent so far.
    public func takeSent() -> [[UInt8]] {
        self.outbox.withLockedValue { outbox in
            defer { outbox.sent = [] }
            return outbox.sent
        }
    }

    /// The next message the guest sends (the first not taken yet), or `timedOut` when none came
    /// within `timeout`; the message that comes after such a timeout is the late answer to that
    /// wait and is dropped. One waiter at a time.
    public func nextSent(timeout: Duration) async -> Answer {
        await withCheckedContinuation { continuation in
            let (ready, number) = self.outbox.withLockedValue { outbox -> (Answer?, Int) in
                if !outbox.sent.isEmpty { return (.message(outbox.sent.removeFirst()), 0) }
                if outbox.departed { return (.departed(ticket: nil), 0) }
                outbox.waits += 1
                outbox.waiter = Waiter(number: outbox.waits, continuation: continuation)
                return (nil, outbox.waits)
            }
            if let ready {
                continuation.resume(returning: ready)
                return
            }
            self.timeOut(after: timeout) { outbox in
                guard let waiter = outbox.waiter, waiter.number == number else { return nil }
                outbox.waiter = nil
                outbox.owed.append(.dropped)
                return waiter.continuation
            }
        }
    }

    /// The answer kept under `ticket` for a call that waited at a node the process has left,
    /// once the guest sends it (within `timeout`); `departed` when the process leaves here too
    /// before it does (the caller asks where it went next).
    public func keptAnswer(_ ticket: UInt64, timeout: Duration) async -> Answer {
        await withCheckedContinuation { continuation in
            let now = self.outbox.withLockedValue { outbox -> Answer? in
                if let answer = outbox.kept.removeValue(forKey: ticket) { return .message(answer) }
                if outbox.departed { return .departed(ticket: ticket) }
                guard outbox.owed.contains(.kept(ticket)), outbox.fetches[ticket] == nil else { return .notOwed }
                outbox.fetches[ticket] = continuation
                return nil
            }
            if let now {
                continuation.resume(returning: now)
                return
            }
            self.timeOut(after: timeout) { outbox in
                guard let fetch = outbox.fetches.removeValue(forKey: ticket) else { return nil }
                // Given up: the answer is dropped when it comes, as a timed-out call's is.
                if let index = outbox.owed.firstIndex(of: .kept(ticket)) { outbox.owed[index] = .dropped }
                return fetch
            }
        }
    }

    /// After `timeout`, answers `timedOut` to the wait `giveUp` finds still waiting and takes
    /// out of the outbox (none when it was answered meanwhile).
    private func timeOut(
        after timeout: Duration,
        _ giveUp: @escaping @Sendable (inout Outbox) -> CheckedContinuation<Answer, Never>?
    ) {
        Task {
            try? await Task.sleep(for: timeout)
            self.outbox.withLockedValue(giveUp)?.resume(returning: .timedOut)
        }
    }

    /// What of a mailbox moves with its process (a strong move): the messages the guest has not
    /// taken, those it sent that nobody took, whom its next answers are for (calls that gave up,
    /// calls that waited at earlier nodes, and the call waiting here now, which stays behind and
    /// fetches its answer from the target), and the answers kept for calls still to fetch them.
    public struct Carried: Codable, Sendable, Equatable {
        public var inbox: [[UInt8]]
        public var unclaimed: [[UInt8]]
        public var owed: [Owed]
        public var kept: [UInt64: [UInt8]]
    }

    /// This mailbox as it stands, for a move; it is left as it is, in case the move fails.
    public func carried() -> Carried {
        self.condition.lock()
        let inbox = self.inbox
        self.condition.unlock()
        return self.outbox.withLockedValue { outbox in
            var owed = outbox.owed
            if var waiter = outbox.waiter {
                let ticket = waiter.ticket ?? UInt64.random(in: 1...UInt64.max)
                waiter.ticket = ticket
                outbox.waiter = waiter
                owed.append(.kept(ticket))
            }
            return Carried(inbox: inbox, unclaimed: outbox.sent, owed: owed, kept: outbox.kept)
        }
    }

    /// Takes on what a process's mailbox held at its source, before the guest runs here.
    public func restore(_ carried: Carried) {
        self.condition.lock()
        self.inbox = carried.inbox + self.inbox
        self.condition.unlock()
        self.outbox.withLockedValue { outbox in
            outbox.sent = carried.unclaimed + outbox.sent
            outbox.owed = carried.owed + outbox.owed
            outbox.kept.merge(carried.kept) { here, _ in here }
        }
    }

    /// The process has left this node: the call waiting here learns where its answer will be
    /// kept (the ticket ``carried()`` gave it), and fetches waiting here are sent on.
    public func departed() {
        let (waiter, fetches) = self.outbox.withLockedValue { outbox in
            outbox.departed = true
            defer {
                outbox.waiter = nil
                outbox.fetches = [:]
            }
            return (outbox.waiter, outbox.fetches)
        }
        waiter?.continuation.resume(returning: .departed(ticket: waiter?.ticket))
        for (ticket, fetch) in fetches { fetch.resume(returning: .departed(ticket: ticket)) }
    }

    var hasMessages: Bool {
        self.condition.lock()
        defer { self.condition.unlock() }
        return !self.inbox.isEmpty
    }

    func setArrivalHandler(_ handler: (@Sendable () -> Void)?) {
        self.condition.lock()
        self.onArrival = handler
        self.condition.unlock()
    }

    /// Blocks the calling thread until a message is queued or `timeout` passes.
    func waitForMessage(timeout: Duration) {
        self.condition.lock()
        if self.inbox.isEmpty { _ = self.condition.wait(until: Date(timeIntervalSinceNow: timeout.inSeconds)) }
        self.condition.unlock()
    }

    func nextForGuest(capacity: Int) -> (message: [UInt8]?, tooLarge: Bool) {
        self.condition.lock()
        defer { self.condition.unlock() }
        guard let first = self.inbox.first else { return (nil, false) }
        guard first.count <= capacity else { return (nil, true) }
        self.inbox.removeFirst()
        return (first, false)
    }

    func sentByGuest(_ message: [UInt8]) {
        let waiter = self.outbox.withLockedValue { outbox -> CheckedContinuation<Answer, Never>? in
            if !outbox.owed.isEmpty {
                guard case .kept(let ticket) = outbox.owed.removeFirst() else { return nil }
                if let fetch = outbox.fetches.removeValue(forKey: ticket) { return fetch }
                outbox.kept[ticket] = message
                return nil
            }
            guard let waiter = outbox.waiter else {
                outbox.sent.append(message)
                return nil
            }
            outbox.waiter = nil
            return waiter.continuation
        }
        waiter?.resume(returning: .message(message))
    }
}

/// What a guest sees of the world: its arguments, environment, standard streams, log and mailbox.
public struct GuestEnvironment: Sendable {
    public var arguments: [String]
    public var environment: [String: String]
    public var standardInput: Int32
    public var standardOutput: Int32
    public var standardError: Int32
    public var mailbox: GuestMailbox
    /// The only host directories the guest can reach, each a layered view (WASI preopens).
    public var directories: [GuestDirectory]
    /// Where `ferry.log` lines go.
    public var log: @Sendable (String) -> Void
    /// The node the guest runs on, when it runs on one: its name and node-local facilities, and
    /// where `ferry.go` takes it.
    public var node: (any GuestNodeServices)?
    /// What the guest reads with `ferry.input`: the parameters it was started with.
    public var input: [UInt8]

    public init(
        arguments: [String] = [],
        environment: [String: String] = [:],
        standardInput: Int32 = 0,
        standardOutput: Int32 = 1,
        standardError: Int32 = 2,
        mailbox: GuestMailbox = GuestMailbox(),
        directories: [GuestDirectory] = [],
        log: @escaping @Sendable (String) -> Void = { _ in },
        node: (any GuestNodeServices)? = nil,
        input: [UInt8] = []
    ) {
        self.node = node
        self.input = input
        self.arguments = arguments
        self.environment = environment
        self.standardInput = standardInput
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.mailbox = mailbox
        self.directories = directories
        self.log = log
    }
}

/// A host function as either engine defines it: its import name and type, and what it does.
struct HostFunction {
    let module: String
    let name: String
    let type: FunctionType
    let body: (HostCall, [Value]) throws -> [Value]
}

/// The guest behind a host call, as its engine shows it.
enum HostCall {
    /// WasmKit's instance (nil when the host function was called directly, not by a guest), and
    /// its store (to grow memory from the host).
    case wasmKit(Instance?, Store?)
    /// Wasmtime's caller: its exports are reached through it during the call only.
    case wasmtime(WasmtimeCaller)

    /// The calling instance's exports, through which Asyncify suspends the guest.
    var exports: (any GuestExports)? {
        switch self {
        case .wasmKit(let instance, let store): instance.map { WasmKitExports(instance: $0, store: store) }
        case .wasmtime(let caller): caller.exports
        }
    }

    /// The guest's exported memory named `memory`, or nil when it has none.
    var memory: (any HostMemory)? {
        switch self {
        case .wasmKit(let instance, _): instance?.exports[memory: "memory"]
        case .wasmtime(let caller): caller.exports?.wasmtimeMemory
        }
    }
}

/// A guest's linear memory as host functions read and write it, whichever engine holds it.
protocol HostMemory: GuestMemory {
    /// Its size now, in bytes.
    var byteCount: Int { get }
}

extension WasmKit.Memory: HostMemory {}

/// The `ferry` import module: the host API every guest may use.
///
/// | import | signature | does |
/// |---|---|---|
/// | `log` | `(ptr: i32, len: i32)` | writes a line to the host's log |
/// | `clock_ms` | `() -> i64` | milliseconds on the host's monotonic clock |
/// | `random` | `(ptr: i32, len: i32)` | fills memory with random bytes |
/// | `yield` | `()` | a point where the host may end the guest's slice or stop it |
/// | `send` | `(ptr: i32, len: i32) -> i32` | passes a message to the host: 0, or -1 when too large |
/// | `receive` | `(ptr: i32, cap: i32) -> i32` | takes the next message: its length, -1 when none, -2 when it does not fit |
/// | `receive_wait` | `(ptr: i32, cap: i32) -> i32` | waits for the next message: its length, or -2 when it does not fit |
/// | `checkpoint` | `()` | where the host may capture the guest's execution state (see ``GuestInstance/call(_:_:checkpoint:)``) |
/// | `safepoint` | `()` | added by Ferry to a module it makes movable (``GuestModule/movable()``): a capture or the end of a slice may happen here |
/// | `node_name` | `(ptr: i32, cap: i32) -> i32` | the name of the node the guest runs on: its length, -1 off a node, -2 when it does not fit |
/// | `go` | `(ptr: i32, len: i32) -> i32` | moves the guest to the named node with its execution state: returns 0 there, -1 here when it could not go |
/// | `go_weak` | `(ptr: i32, len: i32) -> i32` | moves code and data to the named node, where the guest starts again at its `ferry_arrive` export; -1 here when it could not go |
/// | `local_get` | `(key: i32, len: i32, ptr: i32, cap: i32) -> i32` | a value of the node's own key space: its length, -1 when missing, -2 when it does not fit |
/// | `local_put` | `(key: i32, len: i32, ptr: i32, len: i32) -> i32` | stores into the node's own key space: 0, or -1 when refused |
/// | `kv_get` | `(key: i32, len: i32, ptr: i32, cap: i32) -> i32` | a key of the cluster's key-value service: its length, -1 when missing, -2 when it does not fit, -3 when the service cannot be reached |
/// | `kv_put` | `(key: i32, len: i32, ptr: i32, len: i32) -> i32` | stores a key durably: 0, or -3 when the service cannot be reached |
/// | `input` | `(ptr: i32, cap: i32) -> i32` | the input the process was started with: its length, -2 when it does not fit |
/// | `data_read` | `(name: i32, len: i32, offset: i32, ptr: i32, cap: i32) -> i32` | bytes of the node's data set `name` from `offset`: how many, 0 past its end, -1 when the node has none of that name |
/// | `connect` | `(ptr: i32, len: i32) -> i32` | opens a TCP connection to `HOST:PORT`: a handle, or -1 |
/// | `conn_send` | `(handle: i32, ptr: i32, len: i32) -> i32` | bytes sent, or -1 |
/// | `conn_recv` | `(handle: i32, ptr: i32, cap: i32) -> i32` | waits for bytes: how many, 0 at the end of the stream, -1 on error |
/// | `conn_close` | `(handle: i32)` | closes a connection |
///
/// Under a ``GuestScheduler``, a guest built with `FERRY_SCHEDULABLE` is suspended at `yield`
/// when its time slice is over and parked in `receive_wait` while it has no message: its stack is
/// unwound (Asyncify) and the kernel thread runs other guests.
enum FerryHostAPI {
    static let module = "ferry"

    /// The `ferry` functions the guest imports (each host function is an allocation in the
    /// store: only those), for either engine to define.
    static func functions(
        imported: Set<String>,
        environment: GuestEnvironment,
        suspension: SuspendState,
        checkDeadline: @escaping () throws -> Void
    ) -> [HostFunction] {
        let started = ContinuousClock.now
        var functions: [HostFunction] = []
        func define(
            _ name: String,
            _ parameters: [ValueType],
            _ results: [ValueType],
            _ body: @escaping (HostCall, [Value]) throws -> [Value]
        ) {
            guard imported.contains("\(Self.module).\(name)") else { return }
            functions.append(
                HostFunction(
                    module: Self.module,
                    name: name,
                    type: FunctionType(parameters: parameters, results: results),
                    body: body
                )
            )
        }
        define("log", [.i32, .i32], []) { call, arguments in
            try checkDeadline()
            let bytes = try Self.read(call, arguments[0], arguments[1], limit: 64 << 10, call: "log")
            environment.log(String(decoding: bytes, as: UTF8.self))
            return []
        }
        define("clock_ms", [], [.i64]) { _, _ in
            [.i64(UInt64((ContinuousClock.now - started).wholeMilliseconds))]
        }
        define("random", [.i32, .i32], []) { call, arguments in
            let (memory, offset, count) = try Self.region(
                call,
                arguments[0],
                arguments[1],
                limit: 1 << 20,
                call: "random"
            )
            var generator = SystemRandomNumberGenerator()
            memory.withUnsafeMutableBufferPointer(offset: UInt(offset), count: count) { buffer in
                for index in buffer.indices { buffer[index] = generator.next() }
            }
            return []
        }
        define("checkpoint", [], []) { call, _ in try GuestInstance.checkpoint(call, suspension) }
        /// `yield` and `safepoint`: where the host may end the guest's slice, or take it for a capture.
        func suspensionPoint(_ call: HostCall) throws -> [Value] {
            guard let exports = call.exports else {
                try checkDeadline()
                return []
            }
            if try GuestInstance.finishRewind(exports, suspension) { return [] }
            try checkDeadline()
            if suspension.interrupt.take() {
                Self.unwindForCapture(exports, suspension)
            } else if let end = suspension.sliceEnd, ContinuousClock.now >= end {
                try GuestInstance.startUnwind(exports, suspension, reason: .endOfSlice)
            }
            return []
        }
        define("yield", [], []) { call, _ in try suspensionPoint(call) }
        define("safepoint", [], []) { call, _ in
            // Cleared before looking at what was asked, so a request made meanwhile raises it again.
            // Where no other thread can raise it (Wasmtime), it is cleared through the exports: a
            // flag restored raised would otherwise bring the guest here at every loop and call.
            if let flag = suspension.flag {
                flag.clear()
            } else {
                try? call.exports?.setGlobal(SafepointRewriter.flagExport, .i32(0))
            }
            return try suspensionPoint(call)
        }
        for (name, strong) in [("go", true), ("go_weak", false)] {
            define(name, [.i32, .i32], [.i32]) { call, arguments in
                guard let exports = call.exports else { return [.i32(UInt32(bitPattern: -1))] }
                if try GuestInstance.finishRewind(exports, suspension) {
                    return [.i32(UInt32(bitPattern: suspension.resumeValue))]
                }
                try checkDeadline()
                let node = try Self.read(call, arguments[0], arguments[1], limit: 253, call: name)
                // Only a node's scheduler can take a guest elsewhere; anywhere else it stays.
                guard environment.node != nil, suspension.sliceEnd != nil else {
                    return [.i32(UInt32(bitPattern: -1))]
                }
                try GuestInstance.startUnwind(
                    exports,
                    suspension,
                    reason: .move(node: String(decoding: node, as: UTF8.self), strong: strong)
                )
                return [.i32(0)]
            }
        }
        define("node_name", [.i32, .i32], [.i32]) { call, arguments in
            guard let node = environment.node else { return [.i32(UInt32(bitPattern: -1))] }
            return [
                .i32(
                    UInt32(
                        bitPattern: try Self.write(
                            Array(node.nodeName.utf8),
                            call,
                            arguments[0],
                            arguments[1],
                            call: "node_name"
                        )
                    )
                )
            ]
        }
        define("local_get", [.i32, .i32, .i32, .i32], [.i32]) { call, arguments in
            try checkDeadline()
            let key = try Self.read(call, arguments[0], arguments[1], limit: 1024, call: "local_get")
            guard let node = environment.node, let value = node.localGet(String(decoding: key, as: UTF8.self))
            else { return [.i32(UInt32(bitPattern: -1))] }
            return [
                .i32(
                    UInt32(bitPattern: try Self.write(value, call, arguments[2], arguments[3], call: "local_get"))
                )
            ]
        }
        define("local_put", [.i32, .i32, .i32, .i32], [.i32]) { call, arguments in
            try checkDeadline()
            let key = try Self.read(call, arguments[0], arguments[1], limit: 1024, call: "local_put")
            let value = try Self.read(call, arguments[2], arguments[3], limit: 1 << 20, call: "local_put")
            guard let node = environment.node,
                (try? node.localPut(String(decoding: key, as: UTF8.self), value)) != nil
            else { return [.i32(UInt32(bitPattern: -1))] }
            return [.i32(0)]
        }
        define("kv_get", [.i32, .i32, .i32, .i32], [.i32]) { call, arguments in
            try checkDeadline()
            let key = String(
                decoding: try Self.read(call, arguments[0], arguments[1], limit: 1024, call: "kv_get"),
                as: UTF8.self
            )
            guard let node = environment.node else { return [.i32(UInt32(bitPattern: -3))] }
            do {
                guard let value = try node.kvGet(key) else { return [.i32(UInt32(bitPattern: -1))] }
                return [
                    .i32(
                        UInt32(
                            bitPattern: try Self.write(value, call, arguments[2], arguments[3], call: "kv_get")
                        )
                    )
                ]
            } catch let error as GuestStop {
                throw error
            } catch {
                environment.log("kv_get \(key): \(error)")
                return [.i32(UInt32(bitPattern: -3))]
            }
        }
        define("kv_put", [.i32, .i32, .i32, .i32], [.i32]) { call, arguments in
            try checkDeadline()
            let key = String(
                decoding: try Self.read(call, arguments[0], arguments[1], limit: 1024, call: "kv_put"),
                as: UTF8.self
            )
            let value = try Self.read(call, arguments[2], arguments[3], limit: 1 << 20, call: "kv_put")
            do {
                guard let node = environment.node else { return [.i32(UInt32(bitPattern: -3))] }
                try node.kvPut(key, value)
                return [.i32(0)]
            } catch {
                environment.log("kv_put \(key): \(error)")
                return [.i32(UInt32(bitPattern: -3))]
            }
        }
        define("connect", [.i32, .i32], [.i32]) { call, arguments in
            try checkDeadline()
            let address = String(
                decoding: try Self.read(call, arguments[0], arguments[1], limit: 300, call: "connect"),
                as: UTF8.self
            )
            do {
                guard let node = environment.node else { throw GuestServiceUnavailable("not on a node") }
                return [.i32(UInt32(bitPattern: try node.connect(address)))]
            } catch {
                environment.log("connect \(address): \(error)")
                return [.i32(UInt32(bitPattern: -1))]
            }
        }
        define("conn_send", [.i32, .i32, .i32], [.i32]) { call, arguments in
            try checkDeadline()
            let bytes = try Self.read(call, arguments[1], arguments[2], limit: 1 << 20, call: "conn_send")
            let sent = (try? environment.node?.send(Int32(bitPattern: arguments[0].i32), bytes)) ?? -1
            return [.i32(UInt32(bitPattern: Int32(sent)))]
        }
        define("conn_recv", [.i32, .i32, .i32], [.i32]) { call, arguments in
            try checkDeadline()
            let capacity = Int(Int32(bitPattern: arguments[2].i32))
            guard capacity >= 0, let node = environment.node,
                let bytes = try? node.receive(Int32(bitPattern: arguments[0].i32), capacity: min(capacity, 1 << 20))
            else { return [.i32(UInt32(bitPattern: -1))] }
            return [
                .i32(
                    UInt32(bitPattern: try Self.write(bytes, call, arguments[1], arguments[2], call: "conn_recv"))
                )
            ]
        }
        define("input", [.i32, .i32], [.i32]) { call, arguments in
            try checkDeadline()
            let length = try Self.write(environment.input, call, arguments[0], arguments[1], call: "input")
            return [.i32(UInt32(bitPattern: length))]
        }
        define("data_read", [.i32, .i32, .i32, .i32, .i32], [.i32]) { call, arguments in
            try checkDeadline()
            let name = try Self.read(call, arguments[0], arguments[1], limit: 255, call: "data_read")
            let offset = Int(Int32(bitPattern: arguments[2].i32))
            let (memory, at, capacity) = try Self.region(
                call,
                arguments[3],
                arguments[4],
                limit: 1 << 20,
                call: "data_read"
            )
            guard offset >= 0, let node = environment.node,
                let bytes = node.dataRead(String(decoding: name, as: UTF8.self), offset: offset, capacity: capacity)
            else { return [.i32(UInt32(bitPattern: -1))] }
            memory.withUnsafeMutableBufferPointer(offset: UInt(at), count: bytes.count) {
                $0.copyBytes(from: bytes)
            }
            return [.i32(UInt32(bytes.count))]
        }
        define("conn_close", [.i32], []) { _, arguments in
            environment.node?.close(Int32(bitPattern: arguments[0].i32))
            return []
        }
        define("send", [.i32, .i32], [.i32]) { call, arguments in
            try checkDeadline()
            guard Int(arguments[1].i32) <= GuestMailbox.maxMessageBytes else {
                return [.i32(UInt32(bitPattern: -1))]
            }
            let bytes = try Self.read(
                call,
                arguments[0],
                arguments[1],
                limit: GuestMailbox.maxMessageBytes,
                call: "send"
            )
            environment.mailbox.sentByGuest(bytes)
            return [.i32(0)]
        }
        define("receive", [.i32, .i32], [.i32]) { call, arguments in
            try checkDeadline()
            return try Self.receive(call, arguments, from: environment.mailbox) ?? [.i32(UInt32(bitPattern: -1))]
        }
        define("receive_wait", [.i32, .i32], [.i32]) { call, arguments in
            if let exports = call.exports { _ = try GuestInstance.finishRewind(exports, suspension) }
            while true {
                try checkDeadline()
                if let answer = try Self.receive(call, arguments, from: environment.mailbox) { return answer }
                if let exports = call.exports, suspension.sliceEnd != nil {
                    // Parked: the scheduler runs others and rewinds to here when a message comes.
                    try GuestInstance.startUnwind(exports, suspension, reason: .waitingForMessage)
                    return [.i32(0)]
                }
                // Not scheduled: this thread is the guest's own, and it waits (a little at a
                // time, so that a deadline still stops it).
                environment.mailbox.waitForMessage(timeout: .milliseconds(50))
            }
        }
        return functions
    }

    /// Unwinds for a capture someone asked for; when the guest cannot be unwound (no room for
    /// the buffer), says why to the asker and lets the guest carry on.
    static func unwindForCapture(_ exports: any GuestExports, _ suspension: SuspendState) {
        do {
            try GuestInstance.startUnwind(exports, suspension, reason: .capture)
        } catch {
            suspension.interrupt.refuse("\(error)")
        }
    }

    /// Copies `bytes` to the guest's buffer at `pointer` of `capacity`: their length, or -2 when
    /// they do not fit.
    private static func write(
        _ bytes: [UInt8],
        _ guest: HostCall,
        _ pointer: Value,
        _ capacity: Value,
        call: String
    ) throws -> Int32 {
        let (memory, offset, count) = try Self.region(guest, pointer, capacity, limit: 1 << 20, call: call)
        guard bytes.count <= count else { return -2 }
        memory.withUnsafeMutableBufferPointer(offset: UInt(offset), count: bytes.count) { $0.copyBytes(from: bytes) }
        return Int32(bytes.count)
    }

    /// Takes the next message into the guest's memory: `[length]`, `[-2]` when it does not fit,
    /// nil when none is waiting.
    private static func receive(
        _ guest: HostCall,
        _ arguments: [Value],
        from mailbox: GuestMailbox
    ) throws
        -> [Value]?
    {
        let capacity = Int(Int32(bitPattern: arguments[1].i32))
        guard capacity >= 0 else { throw GuestStop.badHostCall("receive with a negative capacity \(capacity)") }
        let next = mailbox.nextForGuest(capacity: capacity)
        if next.tooLarge { return [.i32(UInt32(bitPattern: -2))] }
        guard let message = next.message else { return nil }
        let (memory, offset, _) = try Self.region(
            guest,
            arguments[0],
            .i32(UInt32(message.count)),
            limit: GuestMailbox.maxMessageBytes,
            call: "receive"
        )
        memory.withUnsafeMutableBufferPointer(offset: UInt(offset), count: message.count) { buffer in
            buffer.copyBytes(from: message)
        }
        return [.i32(UInt32(message.count))]
    }

    /// The caller's memory and a checked region of it: a guest that passes a bad pointer or
    /// length is stopped, never allowed to make the host read or write out of bounds.
    private static func region(
        _ guest: HostCall,
        _ pointer: Value,
        _ length: Value,
        limit: Int,
        call: String
    ) throws -> (any HostMemory, Int, Int) {
        guard let memory = guest.memory else {
            throw GuestStop.badHostCall("\(call): the guest exports no memory named 'memory'")
        }
        let offset = Int(pointer.i32)
        let count = Int(Int32(bitPattern: length.i32))
        guard count >= 0, count <= limit, offset + count <= memory.byteCount else {
            throw GuestStop.badHostCall(
                "\(call): \(count) bytes at \(offset) are outside the guest's \(memory.byteCount)-byte memory (or over \(limit))"
            )
        }
        return (memory, offset, count)
    }

    private static func read(
        _ guest: HostCall,
        _ pointer: Value,
        _ length: Value,
        limit: Int,
        call: String
    ) throws
        -> [UInt8]
    {
        let (memory, offset, count) = try Self.region(guest, pointer, length, limit: limit, call: call)
        return memory.withUnsafeMutableBufferPointer(offset: UInt(offset), count: count) { [UInt8]($0) }
    }
}
