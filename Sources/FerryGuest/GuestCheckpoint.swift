import WasmKit

/// What a call into a guest came to.
public enum GuestCallOutcome: Sendable, Equatable {
    /// The call returned these values.
    case finished([Value])
    /// The host took a checkpoint: the call stack was unwound into the snapshot, and the call
    /// continues wherever the snapshot is resumed.
    case checkpointed(GuestSnapshot)
}

/// Where a guest's Asyncify'd stack is, confined to the thread running the guest like its
/// store: the same unwind and rewind serve checkpoints and the scheduler's suspensions.
final class SuspendState {
    enum Mode { case normal, unwinding, rewinding }
    /// Why the stack is being unwound.
    enum Reason: Equatable {
        case checkpoint, endOfSlice, waitingForMessage
        /// Someone asked for the running guest (``GuestInterrupt/requestCapture()``).
        case capture
        /// The guest asked to go to `node` (`ferry.go`, or `ferry.go_weak` when not strong).
        case move(node: String, strong: Bool)
    }
    var mode = Mode.normal
    var reason = Reason.checkpoint
    /// Asked at each `ferry.checkpoint` call (counting from 1 per call): take one now?
    var decide: ((Int) -> Bool)?
    var count = 0
    var buffer: UInt32 = 0
    /// Set while a ``GuestScheduler`` runs the guest: when its time slice ends.
    var sliceEnd: ContinuousClock.Instant?
    /// The slice's length: it counts from the end of the rewind, so that a slice always runs
    /// the guest (a rewind that took a whole slice would otherwise end it before any progress).
    var sliceLength: Duration = .zero
    /// What the host call that unwound returns once the stack is rewound (`ferry.go`: 0 when the
    /// guest arrived elsewhere, -1 when it stayed).
    var resumeValue: Int32 = 0
    /// Requests from other threads, seen at the guest's next safe point.
    var interrupt = GuestInterrupt()
    /// A movable module's safe-point flag.
    var flag: SafepointFlag?
    /// How large an unwind buffer the host gives a movable module: Asyncify saves at most the
    /// interpreter's stack (each local a slot), so its size is enough.
    var unwindBytes = 512 << 10
    /// The guest's memory limit, which the unwind buffer must fit in.
    var maxMemoryBytes = Int.max
}

extension GuestInstance {
    /// Calls `name`, asking `checkpoint` at each checkpoint the guest reaches whether to capture
    /// it there. A captured call ends at once with ``GuestCallOutcome/checkpointed(_:)``; resume
    /// it with ``resume(_:module:limits:environment:checkpoint:)``.
    ///
    /// The guest must be built with Asyncify and export `ferry_asyncify_buffer` (see
    /// `Guests/ferry.h`); each checkpoint unwinds the guest's stack into that buffer (Binaryen's
    /// Asyncify), then memory and mutable globals are copied.
    public func call(
        _ name: String,
        _ arguments: [Value] = [],
        checkpoint: @escaping (Int) -> Bool
    ) throws
        -> GuestCallOutcome
    {
        if self.suspension.mode != .rewinding { self.suspension.mode = .normal }
        self.suspension.decide = checkpoint
        self.suspension.count = 0
        defer { self.suspension.decide = nil }
        let results = try self.invoke(name, arguments)
        guard self.suspension.mode == .unwinding else { return .finished(results) }
        try self.exports.call("asyncify_stop_unwind", [])
        self.suspension.mode = .normal
        return .checkpointed(try self.capture(export: name, arguments: arguments))
    }

    /// Continues a checkpointed call in a fresh instance of `module`: restores memory and
    /// globals, rewinds the call stack, and goes on from the checkpoint as if never interrupted.
    public static func resume(
        _ snapshot: GuestSnapshot,
        module: GuestModule,
        limits: GuestLimits = GuestLimits(),
        environment: GuestEnvironment = GuestEnvironment(),
        engine: GuestEngine = .current,
        checkpoint: @escaping (Int) -> Bool = { _ in false }
    ) throws -> (GuestInstance, GuestCallOutcome) {
        guard snapshot.matches(module) else { throw GuestSnapshotError.wrongModule }
        let instance = try GuestInstance(module: module, limits: limits, environment: environment, engine: engine)
        try instance.restore(snapshot)
        instance.suspension.mode = .rewinding
        try instance.exports.call("asyncify_start_rewind", [.i32(snapshot.asyncifyBuffer)])
        return (instance, try instance.call(snapshot.export, snapshot.arguments, checkpoint: checkpoint))
    }

    /// The guest's data between calls — linear memory and mutable exported globals — as bytes:
    /// what a guest object keeps while deactivated, or takes along when it moves. Needs no
    /// Asyncify: no call is in progress.
    public func saveData() throws -> [UInt8] {
        try self.capture(export: "", arguments: []).serialized()
    }

    /// Puts data saved by ``saveData()`` back, in a fresh instance of the same module.
    public func restoreData(_ bytes: [UInt8]) throws {
        let snapshot = try GuestSnapshot(serialized: bytes)
        guard snapshot.matches(self.module) else { throw GuestSnapshotError.wrongModule }
        try self.restore(snapshot)
    }

    /// The `ferry.checkpoint` import.
    static func checkpoint(_ call: HostCall, _ state: SuspendState) throws -> [Value] {
        guard let exports = call.exports else { return [] }
        // Back at the point of capture: the stack is rebuilt, carry on from here.
        if try Self.finishRewind(exports, state) { return [] }
        guard state.mode == .normal else { return [] }
        if state.interrupt.take() {
            FerryHostAPI.unwindForCapture(exports, state)
            return []
        }
        state.count += 1
        guard let decide = state.decide, decide(state.count) else { return [] }
        try Self.startUnwind(exports, state, reason: .checkpoint)
        return []
    }

    /// Unwinds the guest's call stack into its Asyncify buffer; the call into the guest then
    /// returns at once, and a rewind later brings it back to this host call.
    static func startUnwind(_ exports: any GuestExports, _ state: SuspendState, reason: SuspendState.Reason) throws {
        let (buffer, size) = try Self.unwindBuffer(exports, state)
        guard let memory = exports.memory, Int(buffer) + Int(size) <= memory.byteCount,
            size > 8
        else {
            throw GuestSnapshotError.notCheckpointable("its Asyncify buffer lies outside its memory")
        }
        // Asyncify's buffer header: where the saved stack goes next, and where it must end.
        memory.withUnsafeMutableBufferPointer(offset: UInt(buffer), count: 8) { header in
            header.storeBytes(of: (buffer + 8).littleEndian, toByteOffset: 0, as: UInt32.self)
            header.storeBytes(of: (buffer + size).littleEndian, toByteOffset: 4, as: UInt32.self)
        }
        state.buffer = buffer
        try exports.call("asyncify_start_unwind", [.i32(buffer)])
        state.mode = .unwinding
        state.reason = reason
    }

    /// Where the stack is saved: the buffer a guest built for it reserves (`ferry_asyncify_buffer`),
    /// or, in a module Ferry made movable, pages the host adds to the end of its memory at the
    /// first capture. The guest's allocator never handed those pages out (it grows memory
    /// itself and takes what `memory.grow` returns), and their place travels with the globals.
    private static func unwindBuffer(_ exports: any GuestExports, _ state: SuspendState) throws -> (UInt32, UInt32) {
        if exports.hasFunction("ferry_asyncify_buffer") {
            let buffer = try exports.call("ferry_asyncify_buffer", [])[0].i32
            let size = try exports.call("ferry_asyncify_buffer_size", [])[0].i32
            return (buffer, size)
        }
        guard let address = exports.global(SafepointRewriter.unwindBufferExport),
            exports.global(SafepointRewriter.unwindSizeExport) != nil, let memory = exports.memory
        else {
            throw GuestSnapshotError.notCheckpointable(
                "it has no Asyncify buffer (build it with FERRY_CHECKPOINT_BUFFER, or let Ferry make it movable)"
            )
        }
        if address.i32 == 0 {
            let pages = (state.unwindBytes + 65535) / 65536
            let start = UInt32(memory.byteCount)
            guard memory.byteCount + pages * 65536 <= state.maxMemoryBytes else {
                throw GuestSnapshotError.notCheckpointable(
                    "saving its stack needs \(pages * 64) KiB more memory than its limit of \(GuestStop.size(state.maxMemoryBytes)) allows"
                )
            }
            try Self.grow(exports, pages: pages)
            try exports.setGlobal(SafepointRewriter.unwindBufferExport, .i32(start))
            try exports.setGlobal(SafepointRewriter.unwindSizeExport, .i32(UInt32(pages * 65536)))
        }
        return (
            exports.global(SafepointRewriter.unwindBufferExport)?.i32 ?? 0,
            exports.global(SafepointRewriter.unwindSizeExport)?.i32 ?? 0
        )
    }

    /// In the host call a rewind was aiming for: ends the rewind and says so.
    static func finishRewind(_ exports: any GuestExports, _ state: SuspendState) throws -> Bool {
        guard state.mode == .rewinding else { return false }
        try exports.call("asyncify_stop_rewind", [])
        state.mode = .normal
        if state.sliceEnd != nil { state.sliceEnd = ContinuousClock.now + state.sliceLength }
        return true
    }

    func capture(export: String, arguments: [Value], withMemory: Bool = true) throws -> GuestSnapshot {
        guard let memory = self.exports.memory else {
            throw GuestSnapshotError.notCheckpointable("it exports no memory named 'memory'")
        }
        var globals: [String: Value] = [:]
        for entry in self.module.info.exports {
            switch entry.kind {
            case "global":
                // Only mutable globals change; assigning the value a global has fails for constants.
                guard let value = self.exports.global(entry.name) else { continue }
                if (try? self.exports.setGlobal(entry.name, value)) != nil { globals[entry.name] = value }
            case "table":
                throw GuestSnapshotError.notCheckpointable(
                    "it exports table '\(entry.name)', which a snapshot does not carry"
                )
            default:
                break
            }
        }
        let bytes =
            withMemory ? memory.withUnsafeMutableBufferPointer(offset: 0, count: memory.byteCount) { [UInt8]($0) } : []
        return GuestSnapshot(
            moduleDigest: self.module.digest,
            export: export,
            arguments: arguments,
            asyncifyBuffer: self.suspension.buffer,
            globals: globals,
            memory: bytes
        )
    }

    /// Puts a snapshot back: memory (unless it was received in place already, see
    /// ``sizeMemory(to:)``), the globals but `kept`, and where the stack was saved.
    func restore(_ snapshot: GuestSnapshot, keeping kept: Set<String> = [], memoryInPlace: Bool = false) throws {
        if !memoryInPlace {
            let memory = try self.sizeMemory(to: snapshot.memory.count)
            memory.withUnsafeMutableBufferPointer(offset: 0, count: snapshot.memory.count) { target in
                target.copyBytes(from: snapshot.memory)
            }
        }
        for (name, value) in snapshot.globals where !kept.contains(name) { try self.exports.setGlobal(name, value) }
        self.suspension.buffer = snapshot.asyncifyBuffer
    }

    /// Grows the guest's memory to `bytes` (a snapshot's), which must be whole pages and no less
    /// than it has.
    @discardableResult
    func sizeMemory(to bytes: Int) throws -> any HostMemory {
        guard let memory = self.exports.memory else {
            throw GuestSnapshotError.notCheckpointable("it exports no memory named 'memory'")
        }
        guard bytes % 65536 == 0, bytes >= memory.byteCount else {
            throw GuestSnapshotError.malformed("memory of \(bytes) bytes does not fit this module")
        }
        let missingPages = (bytes - memory.byteCount) / 65536
        if missingPages > 0 { try Self.grow(self.exports, pages: missingPages) }
        return memory
    }

    /// Lends the guest's linear memory to write, in place.
    func withMutableMemory<Result>(_ body: (UnsafeMutableRawBufferPointer) throws -> Result) throws -> Result {
        guard let memory = self.exports.memory, memory.byteCount > 0 else {
            return try body(UnsafeMutableRawBufferPointer(start: nil, count: 0))
        }
        return try memory.withUnsafeMutableBufferPointer(offset: 0, count: memory.byteCount) { try body($0) }
    }

    /// Lends the guest's linear memory, in place.
    func withMemory<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result {
        guard let memory = self.exports.memory else {
            throw GuestSnapshotError.notCheckpointable("it exports no memory named 'memory'")
        }
        guard memory.byteCount > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try memory.withUnsafeMutableBufferPointer(offset: 0, count: memory.byteCount) {
            try body(UnsafeRawBufferPointer($0))
        }
    }

    /// Grows the guest's memory by `pages` from the host (under the same memory limit).
    static func grow(_ exports: any GuestExports, pages: Int) throws {
        guard try exports.growMemory(byPages: pages) else {
            throw GuestSnapshotError.notCheckpointable(
                "its memory cannot grow by \(pages) pages (the module's maximum, or its limit)"
            )
        }
    }
}
