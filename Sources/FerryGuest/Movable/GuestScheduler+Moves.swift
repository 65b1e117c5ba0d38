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
        guard snapshot.matches(module) else { throw GuestSnapshotError.wrongModule }
        let instance = try GuestInstance(module: module, limits: limits, environment: environment)
        let task: GuestTask
        switch continuation {
        case .whereItStopped:
            try instance.restore(snapshot)
            instance.suspension.resumeValue = goResult
            task = GuestTask(
                module: module,
                export: snapshot.export,
                arguments: snapshot.arguments,
                limits: limits,
                environment: environment,
                instance: instance,
                started: true,
                resultBytes: resultBytes,
                onHold: onHold
            )
        case .restart:
            try instance.restore(snapshot, keeping: ["__stack_pointer"])
            let arrive = module.info.exports.contains { $0.name == "ferry_arrive" && $0.kind == "function" }
            task = GuestTask(
                module: module,
                export: arrive ? "ferry_arrive" : snapshot.export,
                arguments: arrive ? [] : snapshot.arguments,
                limits: limits,
                environment: environment,
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
