import CFerryWasmtime
import Foundation
@_spi(WASIPlatform) import WASI
import WasmKit

/// A guest on Wasmtime: the module compiled to machine code by Cranelift, in its own store, under
/// ``GuestLimits`` as Wasmtime enforces them: fuel is Wasmtime's fuel, the deadline its epoch
/// interruption, memory its store limiter, the stack its `max_wasm_stack`.
///
/// What a user can see differ from WasmKit: a `memory.grow` past the limit returns -1 to the
/// guest (as the WebAssembly specification allows) instead of stopping it; the stack is at most
/// ``WasmtimeRuntime/maxStackBytes`` of native stack; a movable module's safe-point flag cannot be
/// raised from another thread, so such a guest comes to the host only where it calls it.
///
/// Confined to the thread that created it, like a WasmKit store.
final class WasmtimeBackend: GuestBackend {
    private let limits: GuestLimits
    private let library: WasmtimeLibrary
    private let store: OpaquePointer
    private let context: OpaquePointer
    private let linker: OpaquePointer
    private var instance = wasmtime_instance_t()
    private let calls: WasmtimeCalls
    private let stackBytes: Int

    init(
        module: GuestModule,
        limits: GuestLimits,
        functions: (_ checkDeadline: @escaping () throws -> Void) -> [HostFunction]
    )
        throws
    {
        let runtime = try WasmtimeRuntime.shared.get()
        let library = runtime.library
        let api = library.api
        self.limits = limits
        self.library = library
        self.stackBytes = min(limits.stackBytes, WasmtimeRuntime.maxStackBytes)
        let key = WasmtimeRuntime.EngineKey(
            fuel: limits.fuel != nil,
            epochs: limits.deadline != nil,
            stackBytes: self.stackBytes
        )
        let compiled = try runtime.compiled(module, for: key)
        let engine = runtime.engine(for: key)
        self.store = api.wasmtime_store_new(engine, nil, nil)!
        self.context = api.wasmtime_store_context(self.store)!
        self.linker = api.wasmtime_linker_new(engine)!
        self.calls = WasmtimeCalls(library: library, limits: limits, stackBytes: self.stackBytes)
        api.wasmtime_store_limiter(self.store, Int64(limits.maxMemoryBytes), 10_000_000, -1, -1, -1)
        if let fuel = limits.fuel, let error = api.wasmtime_context_set_fuel(self.context, fuel) {
            throw GuestError.cannotInstantiate(reason: "Wasmtime: \(library.consume(error))")
        }
        let calls = self.calls
        for function in functions({ try calls.checkDeadline() }) { try self.define(function) }
        try self.calls.run(context: self.context, instantiating: true) { trap in
            api.wasmtime_linker_instantiate(self.linker, self.context, compiled, &self.instance, &trap)
        }
    }

    deinit {
        self.library.api.wasmtime_linker_delete(self.linker)
        self.library.api.wasmtime_store_delete(self.store)
    }

    var exports: any GuestExports {
        WasmtimeExports(
            library: self.library,
            context: self.context,
            calls: self.calls,
            source: .instance(self.instance)
        )
    }

    func invoke(_ name: String, _ arguments: [Value]) throws -> [Value] {
        try self.exports.call(name, arguments)
    }

    var remainingFuel: UInt64? {
        guard self.limits.fuel != nil else { return nil }
        var fuel: UInt64 = 0
        if let error = self.library.api.wasmtime_context_get_fuel(self.context, &fuel) {
            _ = self.library.consume(error)
            return nil
        }
        return fuel
    }

    var safepointFlag: SafepointFlag? { nil }

    /// Defines one host function in the linker.
    private func define(_ function: HostFunction) throws {
        let api = self.library.api
        func vector(_ types: [ValueType]) -> wasm_valtype_vec_t {
            var vector = wasm_valtype_vec_t()
            let elements = types.map { api.wasm_valtype_new($0.wasmtimeKind) }
            api.wasm_valtype_vec_new(&vector, elements.count, elements)
            return vector
        }
        var parameters = vector(function.type.parameters)
        var results = vector(function.type.results)
        let type = api.wasm_functype_new(&parameters, &results)
        defer { api.wasm_functype_delete(type) }
        let binding = Unmanaged.passRetained(
            WasmtimeHostBinding(function: function, calls: self.calls, library: self.library)
        )
        let error = function.module.withCString { module in
            function.name.withCString { name in
                api.wasmtime_linker_define_func(
                    self.linker,
                    module,
                    strlen(module),
                    name,
                    strlen(name),
                    type,
                    wasmtimeHostCallback,
                    binding.toOpaque(),
                    { Unmanaged<WasmtimeHostBinding>.fromOpaque($0!).release() }
                )
            }
        }
        if let error {
            binding.release()
            throw GuestError.cannotInstantiate(reason: "Wasmtime: \(self.library.consume(error))")
        }
    }
}

/// The calls into one guest on Wasmtime: when the outermost began (for the deadline), what a host
/// function threw (Wasmtime only passes a trap back out), and how what ended a call reads.
final class WasmtimeCalls {
    private let library: WasmtimeLibrary
    private let limits: GuestLimits
    private let stackBytes: Int
    private var started = ContinuousClock.now
    private var depth = 0
    private var pending: (any Error)?

    init(library: WasmtimeLibrary, limits: GuestLimits, stackBytes: Int) {
        self.library = library
        self.limits = limits
        self.stackBytes = stackBytes
    }

    func fail(_ error: any Error) { self.pending = error }

    func checkDeadline() throws {
        if let deadline = self.limits.deadline, ContinuousClock.now - self.started >= deadline {
            throw GuestStop.deadline(deadline)
        }
    }

    /// Runs `body`, a call into the guest (a nested one from a host function too), under the
    /// deadline, and turns what ended it into the stop or error a person reads.
    func run(
        context: OpaquePointer,
        instantiating: Bool = false,
        _ body: (inout OpaquePointer?) -> OpaquePointer?
    ) throws {
        let api = self.library.api
        if self.depth == 0 {
            if let deadline = self.limits.deadline {
                let ticks = UInt64((deadline / WasmtimeRuntime.tick).rounded(.up)) + 1
                api.wasmtime_context_set_epoch_deadline(context, ticks)
            }
            self.started = .now
            self.pending = nil
        }
        self.depth += 1
        var trap: OpaquePointer?
        let error = body(&trap)
        self.depth -= 1
        var message = ""
        var code: UInt8 = 255
        if let trap {
            var bytes = wasm_byte_vec_t()
            api.wasm_trap_message(trap, &bytes)
            message = WasmtimeLibrary.string(bytes)
            api.wasm_byte_vec_delete(&bytes)
            if !api.wasmtime_trap_code(trap, &code) { code = 255 }
            api.wasm_trap_delete(trap)
        }
        if let error { message = self.library.consume(error) }
        guard trap != nil || error != nil else { return }
        // What a host function threw is the reason, whatever trap carried it out.
        if let pending = self.pending {
            if self.depth == 0 { self.pending = nil }
            if let exit = pending as? WASIExitCode { throw GuestExit(code: exit.code) }
            throw pending
        }
        switch Int(code) {
        case WASMTIME_TRAP_CODE_OUT_OF_FUEL: throw GuestStop.outOfFuel(budget: self.limits.fuel ?? 0)
        case WASMTIME_TRAP_CODE_INTERRUPT: throw GuestStop.deadline(self.limits.deadline ?? .zero)
        case WASMTIME_TRAP_CODE_STACK_OVERFLOW: throw GuestStop.callStackExhausted(stackBytes: self.stackBytes)
        default: break
        }
        if trap == nil && instantiating { throw GuestError.cannotInstantiate(reason: "Wasmtime: \(message)") }
        let reason = String(message.split(separator: "\n").first ?? "")
        throw GuestStop.trap(reason.replacingOccurrences(of: "wasm trap: ", with: ""))
    }
}

/// One host function as Wasmtime calls it back.
final class WasmtimeHostBinding {
    let function: HostFunction
    let calls: WasmtimeCalls
    let library: WasmtimeLibrary

    init(function: HostFunction, calls: WasmtimeCalls, library: WasmtimeLibrary) {
        self.function = function
        self.calls = calls
        self.library = library
    }
}

/// Wasmtime's entry into every host function: `env` is its ``WasmtimeHostBinding``.
private let wasmtimeHostCallback: wasmtime_func_callback_t = { env, caller, arguments, count, results, resultCount in
    let binding = Unmanaged<WasmtimeHostBinding>.fromOpaque(env!).takeUnretainedValue()
    let values = (0..<count).map { Value(arguments![$0]) }
    do {
        let call = WasmtimeCaller(library: binding.library, calls: binding.calls, caller: caller!)
        let answers = try binding.function.body(.wasmtime(call), values)
        guard answers.count == resultCount else {
            throw GuestStop.badHostCall("\(binding.function.name) gave \(answers.count) results for \(resultCount)")
        }
        for (index, answer) in answers.enumerated() { results![index] = try wasmtime_val_t(answer) }
        return nil
    } catch {
        binding.calls.fail(error)
        let message = "\(error)"
        return message.withCString { binding.library.api.wasmtime_trap_new($0, strlen($0)) }
    }
}

/// The guest behind a host call on Wasmtime, valid during that call.
struct WasmtimeCaller {
    let library: WasmtimeLibrary
    let calls: WasmtimeCalls
    let caller: OpaquePointer

    var exports: WasmtimeExports? {
        guard let context = self.library.api.wasmtime_caller_context(self.caller) else { return nil }
        return WasmtimeExports(library: self.library, context: context, calls: self.calls, source: .caller(self.caller))
    }
}
