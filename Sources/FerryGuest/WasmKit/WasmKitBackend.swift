import Foundation
import NIOConcurrencyHelpers
@_spi(WASIPlatform) import WASI
@_spi(Fuzzing) import WasmKit

/// A guest on WasmKit's interpreter: the store, the limits as WasmKit enforces them (fuel, a
/// resource limiter, its stack size, a watchdog for the deadline).
///
/// Confined to the thread that created it (WasmKit stores are).
final class WasmKitBackend: GuestBackend {
    private let limits: GuestLimits
    let store: Store
    let instance: Instance
    private let watchdog: DeadlineWatchdog?
    private let memoryLimiter: MemoryLimiter

    init(
        module: GuestModule,
        limits: GuestLimits,
        functions: (_ checkDeadline: @escaping () throws -> Void) -> [HostFunction]
    )
        throws
    {
        self.limits = limits
        let engine = Engine(
            configuration: EngineConfiguration(stackSize: limits.stackBytes, fuelMetering: limits.needsMetering)
        )
        let store = Store(engine: engine)
        self.store = store
        self.memoryLimiter = MemoryLimiter(maxBytes: limits.maxMemoryBytes)
        store.resourceLimiter = self.memoryLimiter
        if limits.needsMetering { store.fuel = Fuel(remaining: limits.fuel ?? .max) }
        let watchdog = limits.deadline.map { DeadlineWatchdog(deadline: $0, store: store) }
        self.watchdog = watchdog
        var imports = Imports()
        let hostFunctions = functions {
            if let watchdog, watchdog.hasPassed { throw GuestStop.deadline(watchdog.deadline) }
        }
        for function in hostFunctions {
            imports.define(
                module: function.module,
                name: function.name,
                Function(store: store, type: function.type) { [weak store] caller, arguments in
                    try function.body(.wasmKit(caller.instance, store), arguments)
                }
            )
        }
        do {
            self.instance = try watchdog.guarded { try module.module.instantiate(store: store, imports: imports) }
        } catch {
            throw Self.stop(for: error, limits: limits, watchdog: watchdog, memoryLimiter: self.memoryLimiter)
        }
    }

    func invoke(_ name: String, _ arguments: [Value]) throws -> [Value] {
        guard let function = self.instance.exports[function: name] else {
            throw GuestError.noSuchExport(name: name, available: [])
        }
        do {
            return try self.watchdog.guarded { try function.invoke(arguments) }
        } catch {
            throw Self.stop(for: error, limits: self.limits, watchdog: self.watchdog, memoryLimiter: self.memoryLimiter)
        }
    }

    var exports: any GuestExports { WasmKitExports(instance: self.instance, store: self.store) }

    var remainingFuel: UInt64? { self.limits.fuel == nil ? nil : self.store.fuel?.remaining }

    var safepointFlag: SafepointFlag? {
        self.instance.exports[global: SafepointRewriter.flagExport].map(SafepointFlag.init)
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
        if let error = error as? GuestSnapshotError { return error }
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
}
