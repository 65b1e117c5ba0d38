import WasmKit

extension GuestTask {
    /// The state of a held task, to send elsewhere: memory, globals and (unwound into memory)
    /// the call stack, bound to the module's digest and `epoch`.
    ///
    /// - Throws: ``GuestSnapshotError/notCheckpointable(_:)`` when the task is not held or never
    ///   started.
    public func capture(epoch: UInt64, withMemory: Bool = true) throws -> GuestSnapshot {
        guard let instance = self.heldInstance else {
            throw GuestSnapshotError.notCheckpointable("it is not held, or has not started")
        }
        var snapshot = try instance.capture(export: self.export, arguments: self.arguments, withMemory: withMemory)
        snapshot.epoch = epoch
        return snapshot
    }

    /// Lends a held task's linear memory, in place (to send it without a copy).
    public func withHeldMemory<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) throws -> Result {
        guard let instance = self.heldInstance else {
            throw GuestSnapshotError.notCheckpointable("it is not held, or has not started")
        }
        return try instance.withMemory(body)
    }

    /// Where a held task's call stack lies in its memory, unwound into its Asyncify buffer (as
    /// far as it is filled): the first bytes its rewind reads, wherever it resumes.
    public var heldStack: Range<Int>? {
        guard let instance = self.heldInstance, instance.suspension.buffer > 0 else { return nil }
        let start = Int(instance.suspension.buffer)
        return try? instance.withMemory { memory -> Range<Int>? in
            guard start + 8 <= memory.count else { return nil }
            let end = Int(UInt32(littleEndian: memory.loadUnaligned(fromByteOffset: start, as: UInt32.self)))
            return end > start && end <= memory.count ? start..<end : nil
        }
    }
}

extension GuestScheduler {
    /// How a guest that arrived from elsewhere goes on.
    public enum Continuation: Sendable, Equatable {
        /// Strong mobility: exactly where it was captured (its stack is rewound).
        case whereItStopped
        /// Weak mobility: its code and data came, its execution did not; it starts again at
        /// `ferry_arrive` if it exports one, else at the call it was in, with its memory and
        /// globals (its stack pointer back at the start).
        case restart
    }

    /// A guest arriving from elsewhere, made before its memory comes, so that the memory can be
    /// received straight into it (``withMemory(_:)``), then adopted.
    public final class Arrival: @unchecked Sendable {
        // Sendable: used by the one thread that receives the guest, until it is adopted.
        let instance: GuestInstance
        let module: GuestModule
        let limits: GuestLimits
        let environment: GuestEnvironment

        init(
            module: GuestModule,
            memoryBytes: Int,
            limits: GuestLimits,
            environment: GuestEnvironment,
            engine: GuestEngine
        ) throws {
            self.instance = try GuestInstance(module: module, limits: limits, environment: environment, engine: engine)
            self.module = module
            self.limits = limits
            self.environment = environment
            // At least what it was offered with (the memory that comes may be more).
            try self.grow(to: memoryBytes)
        }

        /// Grows the guest's memory to at least `bytes` (whole wasm pages), for memory that
        /// arrives a piece at a time.
        public func grow(to bytes: Int) throws {
            let whole = (bytes + 65535) / 65536 * 65536
            guard whole > self.instance.memoryBytes else { return }
            _ = try self.instance.sizeMemory(to: whole)
        }

        /// Where the guest's memory lies, when it stays put (post-copy fills it with the kernel).
        public var memoryRegion: GuestMemoryRegion? { self.instance.memoryRegion }

        /// The guest's linear memory, to fill.
        public func withMemory<Result>(_ body: (UnsafeMutableRawBufferPointer) throws -> Result) throws -> Result {
            try self.instance.withMutableMemory(body)
        }
    }

    /// Makes the instance of a guest that is arriving, its memory grown to `memoryBytes`.
    public func prepareArrival(
        _ module: GuestModule,
        memoryBytes: Int,
        limits: GuestLimits = GuestLimits(),
        environment: GuestEnvironment = GuestEnvironment()
    ) throws -> Arrival {
        try Arrival(
            module: module,
            memoryBytes: memoryBytes,
            limits: limits,
            environment: environment,
            engine: self.engine
        )
    }

    /// Runs a guest captured elsewhere (``GuestTask/capture(epoch:withMemory:)``) in `module` —
    /// the same module, by digest — from `snapshot`. A guest held in `ferry.go` sees `goResult`
    /// returned there (0: it arrived).
    ///
    /// - Throws: ``GuestSnapshotError/wrongModule`` for a snapshot of another module, or why the
    ///   instance could not be made; nothing runs then.
    public func adopt(
        _ snapshot: GuestSnapshot,
        module: GuestModule,
        continuation: Continuation,
        limits: GuestLimits = GuestLimits(),
        environment: GuestEnvironment = GuestEnvironment(),
        resultBytes: Int = 0,
        goResult: Int32 = 0,
        start: Bool = true,
        onHold: (@Sendable (GuestTask, GuestTask.Hold) -> Void)? = nil
    ) throws -> GuestTask {
        let arrival = try Arrival(
            module: module,
            memoryBytes: snapshot.memory.count,
            limits: limits,
            environment: environment,
            engine: self.engine
        )
        try arrival.withMemory { $0.copyBytes(from: snapshot.memory) }
        return try self.adopt(
            snapshot,
            arrival: arrival,
            continuation: continuation,
            resultBytes: resultBytes,
            goResult: goResult,
            start: start,
            onHold: onHold
        )
    }

    /// Runs an ``Arrival`` whose memory was received in place, from `snapshot`'s execution state
    /// (its memory field is not used).
    public func adopt(
        _ snapshot: GuestSnapshot,
        arrival: Arrival,
        continuation: Continuation,
        resultBytes: Int = 0,
        goResult: Int32 = 0,
        start: Bool = true,
        onHold: (@Sendable (GuestTask, GuestTask.Hold) -> Void)? = nil
    ) throws -> GuestTask {
        let module = arrival.module
        guard snapshot.matches(module) else { throw GuestSnapshotError.wrongModule }
        let instance = arrival.instance
        let task: GuestTask
        switch continuation {
        case .whereItStopped:
            try instance.restore(snapshot, memoryInPlace: true)
            instance.suspension.resumeValue = goResult
            task = GuestTask(
                module: module,
                export: snapshot.export,
                arguments: snapshot.arguments,
                limits: arrival.limits,
                environment: arrival.environment,
                engine: self.engine,
                instance: instance,
                started: true,
                resultBytes: resultBytes,
                onHold: onHold
            )
        case .restart:
            try instance.restore(snapshot, keeping: ["__stack_pointer"], memoryInPlace: true)
            let arrive = module.info.exports.contains { $0.name == "ferry_arrive" && $0.kind == "function" }
            task = GuestTask(
                module: module,
                export: arrive ? "ferry_arrive" : snapshot.export,
                arguments: arrive ? [] : snapshot.arguments,
                limits: arrival.limits,
                environment: arrival.environment,
                engine: self.engine,
                instance: instance,
                started: false,
                resultBytes: resultBytes,
                onHold: onHold
            )
        }
        if start { self.enqueue(task) }
        return task
    }

    /// Runs a task ``adopt(_:module:continuation:limits:environment:resultBytes:start:onHold:)``
    /// made without starting it (a move starts it once it has committed).
    public func start(_ task: GuestTask) {
        self.enqueue(task)
    }
}
