import FerryWire
import Foundation
import NIOConcurrencyHelpers
@_spi(WASIPlatform) import WASI
@_spi(Fuzzing) import WasmKit
import WasmKitWASI

/// One running guest: a module instantiated in its own store, with Ferry's host API and WASI
/// preview1, under ``GuestLimits``.
///
/// Confined to the thread that created it (WasmKit stores are). Calls into it are synchronous;
/// a guest that spins, eats memory, recurses without end or outlives its deadline is stopped with
/// a ``GuestStop`` and the thread, the process and every other guest carry on.
public final class GuestInstance {
    public let module: GuestModule
    public let limits: GuestLimits
    let store: Store
    let instance: Instance
    private let wasi: WASIBridgeToHost
    private let watchdog: DeadlineWatchdog?
    private let memoryLimiter: MemoryLimiter
    let suspension = SuspendState()

    /// Instantiates `module`. Its start function, if any, runs now, under the same limits.
    public init(
        module: GuestModule,
        limits: GuestLimits = GuestLimits(),
        environment: GuestEnvironment = GuestEnvironment()
    )
        throws
    {
        self.module = module
        self.limits = limits
        let engine = Engine(
            configuration: EngineConfiguration(stackSize: limits.stackBytes, fuelMetering: limits.needsMetering)
        )
        let store = Store(engine: engine)
        self.store = store
        self.memoryLimiter = MemoryLimiter(maxBytes: limits.maxMemoryBytes)
        store.resourceLimiter = self.memoryLimiter
        if limits.needsMetering { store.fuel = Fuel(remaining: limits.fuel ?? .max) }
        self.watchdog = limits.deadline.map { DeadlineWatchdog(deadline: $0, store: store) }
        self.suspension.store = store
        self.suspension.unwindBytes = limits.stackBytes
        self.suspension.maxMemoryBytes = limits.maxMemoryBytes
        self.wasi = try GuestWASI.bridge(for: environment)
        var imports = Imports()
        // Only what the module imports: each host function is an allocation in the new store.
        let imported = Set(module.info.imports.map { "\($0.module).\($0.name)" })
        let watchdog = self.watchdog
        let functions =
            GuestWASI.functions(of: self.wasi, imported: imported, memory: WasmKit.Memory.self)
            + FerryHostAPI.functions(imported: imported, environment: environment, suspension: self.suspension) {
                if let watchdog, watchdog.hasPassed { throw GuestStop.deadline(watchdog.deadline) }
            }
        for function in functions {
            imports.define(
                module: function.module,
                name: function.name,
                Function(store: store, type: function.type) { caller, arguments in
                    try function.body(.wasmKit(caller.instance), arguments)
                }
            )
        }
        do {
            self.instance = try self.watchdog.guarded {
                try module.module.instantiate(store: store, imports: imports)
            }
        } catch {
            try? self.wasi.close()
            throw Self.stop(for: error, limits: limits, watchdog: watchdog, memoryLimiter: self.memoryLimiter)
        }
        self.suspension.flag = self.instance.exports[global: SafepointRewriter.flagExport].map(SafepointFlag.init)
    }

    deinit {
        try? self.wasi.close()
        // The flag's global holds the store, whose host functions hold the suspension state: let
        // go of it, or the store and the guest's 4 GiB reservation are never freed.
        self.suspension.flag = nil
    }

    /// Calls the exported function `name`.
    ///
    /// - Throws: ``GuestStop`` when the guest was stopped; ``GuestError`` when there is no such
    ///   export or the arguments do not fit its signature.
    @discardableResult
    public func invoke(_ name: String, _ arguments: [Value] = []) throws -> [Value] {
        guard let function = self.instance.exports[function: name] else {
            throw GuestError.noSuchExport(
                name: name,
                available: self.module.info.exports.filter { $0.kind == "function" }.map(\.name)
            )
        }
        guard function.type.parameters.count == arguments.count,
            zip(function.type.parameters, arguments).allSatisfy({ Self.type(of: $1) == $0 })
        else {
            throw GuestError.badArguments(
                export: name,
                reason:
                    "it takes (\(function.type.parameters.map { "\($0)" }.joined(separator: ", "))), got \(arguments.count) argument(s)"
            )
        }
        do {
            return try self.watchdog.guarded { try function.invoke(arguments) }
        } catch {
            throw self.stop(for: error)
        }
    }

    /// Runs a WASI command's `_start`; returns its exit code.
    public func runCommand() throws -> UInt32 {
        do {
            return try self.watchdog.guarded { try self.wasi.start(self.instance) }
        } catch {
            throw self.stop(for: error)
        }
    }

    /// The signature of export `name`, to turn text arguments into values.
    public func parameters(of name: String) throws -> [ValueType] {
        guard let function = self.instance.exports[function: name] else {
            throw GuestError.noSuchExport(
                name: name,
                available: self.module.info.exports.filter { $0.kind == "function" }.map(\.name)
            )
        }
        return function.type.parameters
    }

    /// Copies `count` bytes of the guest's memory from `offset`.
    public func readMemory(offset: Int, count: Int) throws -> [UInt8] {
        guard let memory = self.instance.exports[memory: "memory"] else {
            throw GuestError.badArguments(export: "memory", reason: "the guest exports no memory named 'memory'")
        }
        guard offset >= 0, count >= 0, offset + count <= memory.byteCount else {
            throw GuestError.badArguments(
                export: "memory",
                reason: "\(count) bytes at \(offset) lie outside its \(memory.byteCount) bytes"
            )
        }
        return memory.withUnsafeBufferPointer(offset: UInt(offset), count: count) { [UInt8]($0) }
    }

    /// The size of the guest's linear memory, in bytes (0 without one).
    public var memoryBytes: Int { self.instance.exports[memory: "memory"]?.byteCount ?? 0 }

    /// Fuel left, when metered.
    public var remainingFuel: UInt64? { self.limits.fuel == nil ? nil : self.store.fuel?.remaining }

    private func stop(for error: any Error) -> any Error {
        Self.stop(for: error, limits: self.limits, watchdog: self.watchdog, memoryLimiter: self.memoryLimiter)
    }

    /// Turns what WasmKit threw into the reason a person reads.
    private static func stop(
        for error: any Error,
        limits: GuestLimits,
        watchdog: DeadlineWatchdog?,
        memoryLimiter: MemoryLimiter
    ) -> any Error {
        if let stop = error as? GuestStop { return stop }
        if let exit = error as? WASIExitCode { return GuestExit(code: exit.code) }
        if let error = error as? GuestError { return error }
        if let watchdog, watchdog.hasFired { return GuestStop.deadline(watchdog.deadline) }
        if let exceeded = memoryLimiter.refused {
            return GuestStop.memoryLimit(limitBytes: limits.maxMemoryBytes, requestedBytes: exceeded)
        }
        if let trap = error as? Trap {
            let text = "\(trap)"
            let reason = String(text.split(separator: "\n").first ?? Substring(text)).replacingOccurrences(
                of: "Trap: ",
                with: ""
            )
            if reason.hasPrefix("out of fuel") { return GuestStop.outOfFuel(budget: limits.fuel ?? 0) }
            if reason.hasPrefix("call stack exhausted") {
                return GuestStop.callStackExhausted(stackBytes: limits.stackBytes)
            }
            return GuestStop.trap(reason)
        }
        return GuestError.cannotInstantiate(reason: "\(error)")
    }

    static func type(of value: Value) -> ValueType {
        switch value {
        case .i32: .i32
        case .i64: .i64
        case .f32: .f32
        case .f64: .f64
        case .v128: .v128
        case .ref(.function): .ref(.funcRef)
        case .ref(.extern): .ref(.externRef)
        case .ref(.exception): .ref(.exnRef)
        }
    }
}

/// Refuses memory beyond the limit by throwing, so the guest stops at the `memory.grow` (or at
/// instantiation) with a reason instead of carrying on with -1.
private final class MemoryLimiter: ResourceLimiter, @unchecked Sendable {
    let maxBytes: Int
    /// Confined to the guest's thread, like the store that calls it.
    var refused: Int?

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    func limitMemoryGrowth(to desired: Int) throws -> Bool {
        guard desired <= self.maxBytes else {
            self.refused = desired
            throw GuestStop.memoryLimit(limitBytes: self.maxBytes, requestedBytes: desired)
        }
        return true
    }

    func limitTableGrowth(to desired: Int) throws -> Bool { desired <= 1_000_000 }
}

/// Enforces a wall-clock deadline on a call that may never call the host.
///
/// WasmKit has no way to interrupt a running store from another thread. It charges fuel, though,
/// by reading the store's fuel counter from memory at every metered region. Once the deadline
/// passes, this watchdog empties that counter (every millisecond, since a charge in flight may
/// write back over it) until the call ends, and the guest traps out of fuel at its next region.
/// The store is otherwise confined to its thread; the counter is one aligned 64-bit word, and
/// the only thing written to it from here is zero.
final class DeadlineWatchdog: @unchecked Sendable {
    let deadline: Duration
    private let store: Store
    private let state = NIOLockedValueBox<(running: Bool, fired: Bool, passed: Bool, generation: Int)>(
        (false, false, false, 0)
    )
    private let condition = NSCondition()

    init(deadline: Duration, store: Store) {
        self.deadline = deadline
        self.store = store
    }

    /// Whether the deadline of the current call passed.
    var hasPassed: Bool { self.state.withLockedValue { $0.passed } }
    /// Whether the watchdog took the guest's fuel in the current call.
    var hasFired: Bool { self.state.withLockedValue { $0.fired } }

    func run<Result>(_ body: () throws -> Result) rethrows -> Result {
        let generation = self.state.withLockedValue { state in
            state = (true, false, false, state.generation + 1)
            return state.generation
        }
        let end = ContinuousClock.now + self.deadline
        let thread = Thread { [self] in self.watch(until: end, generation: generation) }
        thread.name = "ferry-guest-deadline"
        thread.start()
        defer {
            self.condition.lock()
            self.state.withLockedValue { $0.running = false }
            self.condition.broadcast()
            self.condition.unlock()
        }
        return try body()
    }

    private func watch(until end: ContinuousClock.Instant, generation: Int) {
        self.condition.lock()
        while self.state.withLockedValue({ $0.running && $0.generation == generation }) {
            let now = ContinuousClock.now
            if now >= end {
                self.state.withLockedValue { $0.passed = true }
                break
            }
            _ = self.condition.wait(until: Date(timeIntervalSinceNow: (end - now).inSeconds))
        }
        self.condition.unlock()
        while self.state.withLockedValue({ $0.running && $0.generation == generation }) {
            self.state.withLockedValue { $0.fired = true }
            self.store.fuel = Fuel(remaining: 0)
            usleep(1000)
        }
    }
}

extension Optional where Wrapped == DeadlineWatchdog {
    /// Runs `body` under the deadline, if there is one.
    func guarded<Result>(_ body: () throws -> Result) rethrows -> Result {
        guard let watchdog = self else { return try body() }
        return try watchdog.run(body)
    }
}
