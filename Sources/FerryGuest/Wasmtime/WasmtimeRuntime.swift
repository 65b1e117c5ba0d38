import CFerryWasmtime
import Foundation
import NIOConcurrencyHelpers

/// Wasmtime's engines and compiled modules, shared by every guest of the process.
///
/// An engine is fixed at creation to meter fuel or not, to be interruptible by epochs or not, and
/// to a stack size, so there is one per combination the process uses. Compiling a module with
/// Cranelift costs milliseconds: each module is compiled once per engine and instantiated from
/// the compiled code after. Neither is ever freed: a process uses few of each.
final class WasmtimeRuntime: @unchecked Sendable {
    // Sendable: the tables are guarded by locks; engines and modules are thread-safe in Wasmtime.
    struct EngineKey: Hashable {
        var fuel: Bool
        var epochs: Bool
        var stackBytes: Int
    }

    let library: WasmtimeLibrary
    private let engines = NIOLockedValueBox<[EngineKey: OpaquePointer]>([:])
    private let modules = NIOLockedValueBox<[ModuleKey: OpaquePointer]>([:])
    private let epochEngines = NIOLockedValueBox<[OpaquePointer]>([])
    private let tickerStarted = NIOLockedValueBox(false)

    private struct ModuleKey: Hashable {
        var engine: EngineKey
        var digest: ModuleDigest
    }

    /// How often the epoch advances: a deadline is enforced to within one tick.
    static let tick = Duration.milliseconds(1)

    static let shared: Result<WasmtimeRuntime, GuestError> = WasmtimeLibrary.shared.map(WasmtimeRuntime.init)

    private init(library: WasmtimeLibrary) { self.library = library }

    /// Wasmtime's native stack for guests is the calling thread's own: keep it well inside the
    /// smallest thread stack a guest may run on.
    static let maxStackBytes = 512 << 10

    func engine(for key: EngineKey) -> OpaquePointer {
        self.engines.withLockedValue { engines in
            if let engine = engines[key] { return engine }
            let api = self.library.api
            let config = api.wasm_config_new()
            api.wasmtime_config_consume_fuel_set(config, key.fuel)
            api.wasmtime_config_epoch_interruption_set(config, key.epochs)
            api.wasmtime_config_max_wasm_stack_set(config, key.stackBytes)
            // One thread compiles: a module arriving at a node must not take every core from the
            // guests already running there (or from the node's CPU quota).
            api.wasmtime_config_parallel_compilation_set(config, false)
            let engine = api.wasm_engine_new_with_config(config)!
            engines[key] = engine
            if key.epochs { self.tickEpochs(of: engine) }
            return engine
        }
    }

    /// `module` compiled for the engine `key`, compiled on first use.
    func compiled(_ module: GuestModule, for key: EngineKey) throws -> OpaquePointer {
        let moduleKey = ModuleKey(engine: key, digest: module.digest)
        if let compiled = self.modules.withLockedValue({ $0[moduleKey] }) { return compiled }
        let engine = self.engine(for: key)
        var compiled: OpaquePointer?
        let error = module.bytes.withUnsafeBufferPointer { bytes in
            self.library.api.wasmtime_module_new(engine, bytes.baseAddress, bytes.count, &compiled)
        }
        if let error { throw GuestError.cannotInstantiate(reason: "Wasmtime: \(self.library.consume(error))") }
        return self.modules.withLockedValue { modules in
            // Two threads may have compiled it at once: keep the first, drop the other.
            if let first = modules[moduleKey] {
                self.library.api.wasmtime_module_delete(compiled)
                return first
            }
            modules[moduleKey] = compiled!
            return compiled!
        }
    }

    /// Advances the epoch of every interruptible engine each tick, from one thread for all.
    private func tickEpochs(of engine: OpaquePointer) {
        self.epochEngines.withLockedValue { $0.append(engine) }
        let start = self.tickerStarted.withLockedValue { started in
            defer { started = true }
            return !started
        }
        guard start else { return }
        let thread = Thread { [self] in
            let microseconds = useconds_t(Self.tick.components.attoseconds / 1_000_000_000_000)
            while true {
                for engine in self.epochEngines.withLockedValue({ $0 }) {
                    self.library.api.wasmtime_engine_increment_epoch(engine)
                }
                usleep(microseconds)
            }
        }
        thread.name = "ferry-wasmtime-epochs"
        thread.start()
    }
}
