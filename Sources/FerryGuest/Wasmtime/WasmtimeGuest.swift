import CFerryWasmtime
import Foundation
@_spi(WASIPlatform) import WASI
import WasmKit

/// One running guest on Wasmtime: the module compiled to machine code by Cranelift, in its own
/// store, with Ferry's host API and Ferry's WASI (the same layered directories as on WasmKit),
/// under ``GuestLimits``: fuel is Wasmtime's fuel, the deadline its epoch interruption, memory its
/// store limiter, the stack its `max_wasm_stack`.
///
/// Differences from ``GuestInstance`` a user can see: a `memory.grow` past the limit returns -1
/// to the guest (as the WebAssembly specification allows) instead of stopping it; the stack is
/// at most ``WasmtimeRuntime/maxStackBytes`` of native stack; checkpoints and the scheduler's
/// suspension (Asyncify driven by the host) are WasmKit's only for now.
///
/// Confined to the thread that created it, like a WasmKit store.
public final class WasmtimeGuest: RunningGuest {
    public let module: GuestModule
    public let limits: GuestLimits
    private let library: WasmtimeLibrary
    private let store: OpaquePointer
    private let context: OpaquePointer
    private let linker: OpaquePointer
    private var instance = wasmtime_instance_t()
    private let wasi: WASIBridgeToHost
    private let calls: WasmtimeCalls
    private let stackBytes: Int

    public init(
        module: GuestModule,
        limits: GuestLimits = GuestLimits(),
        environment: GuestEnvironment = GuestEnvironment()
    ) throws {
        let runtime = try WasmtimeRuntime.shared.get()
        let library = runtime.library
        let api = library.api
        self.module = module
        self.limits = limits
        self.library = library
        self.stackBytes = min(limits.stackBytes, WasmtimeRuntime.maxStackBytes)
        let key = WasmtimeRuntime.EngineKey(
            fuel: limits.fuel != nil,
            epochs: limits.deadline != nil,
            stackBytes: self.stackBytes
        )
        let compiled = try runtime.compiled(module, for: key)
        self.store = api.wasmtime_store_new(runtime.engine(for: key), nil, nil)!
        self.context = api.wasmtime_store_context(self.store)!
        api.wasmtime_store_limiter(self.store, Int64(limits.maxMemoryBytes), 10_000_000, -1, -1, -1)
        if let fuel = limits.fuel, let error = api.wasmtime_context_set_fuel(self.context, fuel) {
            api.wasmtime_store_delete(self.store)
            throw GuestError.cannotInstantiate(reason: "Wasmtime: \(library.consume(error))")
        }
        self.linker = api.wasmtime_linker_new(runtime.engine(for: key))!
        self.calls = WasmtimeCalls(deadline: limits.deadline)
        do {
            self.wasi = try GuestWASI.bridge(for: environment)
        } catch {
            api.wasmtime_linker_delete(self.linker)
            api.wasmtime_store_delete(self.store)
            throw error
        }
        let imported = Set(module.info.imports.map { "\($0.module).\($0.name)" })
        let calls = self.calls
        let functions =
            GuestWASI.functions(of: self.wasi, imported: imported, memory: WasmtimeMemory.self)
            + FerryHostAPI.functions(imported: imported, environment: environment, suspension: SuspendState()) {
                try calls.checkDeadline()
            }
        for function in functions { try self.define(function) }
        try self.call("instantiate") { trap in
            api.wasmtime_linker_instantiate(self.linker, self.context, compiled, &self.instance, &trap)
        }
    }

    deinit {
        try? self.wasi.close()
        self.library.api.wasmtime_linker_delete(self.linker)
        self.library.api.wasmtime_store_delete(self.store)
    }

    @discardableResult
    public func invoke(_ name: String, _ arguments: [Value]) throws -> [Value] {
        guard var function = self.export(name, kind: WASMTIME_EXTERN_FUNC)?.of.func else {
            throw GuestError.noSuchExport(
                name: name,
                available: self.module.info.exports.filter { $0.kind == "function" }.map(\.name)
            )
        }
        let (parameters, results) = self.signature(of: &function)
        guard parameters == arguments.map(GuestInstance.type(of:)) else {
            throw GuestError.badArguments(
                export: name,
                reason:
                    "it takes (\(parameters.map { "\($0)" }.joined(separator: ", "))), got \(arguments.count) argument(s)"
            )
        }
        let values = try arguments.map(wasmtime_val_t.init)
        var answers = [wasmtime_val_t](repeating: wasmtime_val_t(), count: results.count)
        try self.call(name) { trap in
            self.library.api.wasmtime_func_call(
                self.context,
                &function,
                values,
                values.count,
                &answers,
                answers.count,
                &trap
            )
        }
        return answers.map(Value.init)
    }

    public func runCommand() throws -> UInt32 {
        do {
            try self.invoke("_start", [])
            return 0
        } catch let exit as GuestExit {
            return exit.code
        }
    }

    public func readMemory(offset: Int, count: Int) throws -> [UInt8] {
        guard let memory = self.memory else {
            throw GuestError.badArguments(export: "memory", reason: "the guest exports no memory named 'memory'")
        }
        guard offset >= 0, count >= 0, offset + count <= memory.byteCount else {
            throw GuestError.badArguments(
                export: "memory",
                reason: "\(count) bytes at \(offset) lie outside its \(memory.byteCount) bytes"
            )
        }
        return memory.withUnsafeMutableBufferPointer(offset: UInt(offset), count: count) { [UInt8]($0) }
    }

    public var memoryBytes: Int { self.memory?.byteCount ?? 0 }

    public var remainingFuel: UInt64? {
        guard self.limits.fuel != nil else { return nil }
        var fuel: UInt64 = 0
        if let error = self.library.api.wasmtime_context_get_fuel(self.context, &fuel) {
            _ = self.library.consume(error)
            return nil
        }
        return fuel
    }

    private var memory: WasmtimeMemory? {
        guard let memory = self.export("memory", kind: WASMTIME_EXTERN_MEMORY)?.of.memory else { return nil }
        return WasmtimeMemory(api: self.library.api, context: self.context, memory: memory)
    }

    private func export(_ name: String, kind: Int) -> wasmtime_extern_t? {
        var found = wasmtime_extern_t()
        let present = name.withCString { pointer in
            self.library.api.wasmtime_instance_export_get(
                self.context,
                &self.instance,
                pointer,
                strlen(pointer),
                &found
            )
        }
        guard present, Int(found.kind) == kind else { return nil }
        return found
    }

    private func signature(of function: inout wasmtime_func_t) -> (parameters: [ValueType], results: [ValueType]) {
        let api = self.library.api
        let type = api.wasmtime_func_type(self.context, &function)
        defer { api.wasm_functype_delete(type) }
        func types(_ vector: UnsafePointer<wasm_valtype_vec_t>?) -> [ValueType] {
            guard let vector = vector?.pointee, let data = vector.data else { return [] }
            return (0..<vector.size).map { ValueType(wasmtimeKind: api.wasm_valtype_kind(data[$0])) }
        }
        return (types(api.wasm_functype_params(type)), types(api.wasm_functype_results(type)))
    }

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
        let binding = Unmanaged.passRetained(WasmtimeHostBinding(function: function, calls: self.calls, api: api))
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

    /// Runs `body`, a call into the guest, under the deadline, and turns what ended it into the
    /// stop or error a person reads.
    private func call(
        _ what: String,
        _ body: (inout OpaquePointer?) -> OpaquePointer?
    ) throws {
        let api = self.library.api
        if let deadline = self.limits.deadline {
            let ticks = UInt64((deadline / WasmtimeRuntime.tick).rounded(.up)) + 1
            api.wasmtime_context_set_epoch_deadline(self.context, ticks)
        }
        self.calls.begin()
        var trap: OpaquePointer?
        let error = body(&trap)
        let pending = self.calls.end()
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
        if let error { message = library.consume(error) }
        // What a host function threw is the reason, whatever trap carried it out.
        if let pending {
            if let exit = pending as? WASIExitCode { throw GuestExit(code: exit.code) }
            throw pending
        }
        guard trap != nil || error != nil else { return }
        switch Int(code) {
        case WASMTIME_TRAP_CODE_OUT_OF_FUEL: throw GuestStop.outOfFuel(budget: self.limits.fuel ?? 0)
        case WASMTIME_TRAP_CODE_INTERRUPT: throw GuestStop.deadline(self.limits.deadline ?? .zero)
        case WASMTIME_TRAP_CODE_STACK_OVERFLOW: throw GuestStop.callStackExhausted(stackBytes: self.stackBytes)
        default: break
        }
        let reason = String(message.split(separator: "\n").first ?? "").replacingOccurrences(
            of: "wasm trap: ",
            with: ""
        )
        if trap == nil && what == "instantiate" { throw GuestError.cannotInstantiate(reason: "Wasmtime: \(message)") }
        throw GuestStop.trap(reason)
    }
}

/// The state of the call in progress that host functions share with the guest: when it began
/// (for the deadline) and what a host function threw (Wasmtime only passes a trap back out).
final class WasmtimeCalls {
    private let deadline: Duration?
    private var started = ContinuousClock.now
    private var pending: (any Error)?

    init(deadline: Duration?) { self.deadline = deadline }

    func begin() {
        self.started = .now
        self.pending = nil
    }

    func end() -> (any Error)? {
        defer { self.pending = nil }
        return self.pending
    }

    func fail(_ error: any Error) { self.pending = error }

    func checkDeadline() throws {
        if let deadline, ContinuousClock.now - self.started >= deadline { throw GuestStop.deadline(deadline) }
    }
}

/// One host function as Wasmtime calls it back.
final class WasmtimeHostBinding {
    let function: HostFunction
    let calls: WasmtimeCalls
    let api: ferry_wasmtime_api

    init(function: HostFunction, calls: WasmtimeCalls, api: ferry_wasmtime_api) {
        self.function = function
        self.calls = calls
        self.api = api
    }
}

/// Wasmtime's entry into every host function: `env` is its ``WasmtimeHostBinding``.
private let wasmtimeHostCallback: wasmtime_func_callback_t = { env, caller, arguments, count, results, resultCount in
    let binding = Unmanaged<WasmtimeHostBinding>.fromOpaque(env!).takeUnretainedValue()
    let values = (0..<count).map { Value(arguments![$0]) }
    do {
        let answers = try binding.function.body(.wasmtime(WasmtimeCaller(api: binding.api, caller: caller!)), values)
        guard answers.count == resultCount else {
            throw GuestStop.badHostCall("\(binding.function.name) gave \(answers.count) results for \(resultCount)")
        }
        for (index, answer) in answers.enumerated() { results![index] = try wasmtime_val_t(answer) }
        return nil
    } catch {
        binding.calls.fail(error)
        let message = "\(error)"
        return message.withCString { binding.api.wasmtime_trap_new($0, strlen($0)) }
    }
}

/// The guest behind a host call on Wasmtime, valid during that call.
struct WasmtimeCaller {
    let api: ferry_wasmtime_api
    let caller: OpaquePointer

    var memory: WasmtimeMemory? {
        var found = wasmtime_extern_t()
        guard self.api.wasmtime_caller_export_get(self.caller, "memory", 6, &found),
            Int(found.kind) == WASMTIME_EXTERN_MEMORY, let context = self.api.wasmtime_caller_context(self.caller)
        else { return nil }
        return WasmtimeMemory(api: self.api, context: context, memory: found.of.memory)
    }
}

/// A guest's memory on Wasmtime. Its base is looked up at each access: growing it may move it.
struct WasmtimeMemory: HostMemory {
    let api: ferry_wasmtime_api
    let context: OpaquePointer
    var memory: wasmtime_memory_t

    var byteCount: Int {
        var memory = self.memory
        return self.api.wasmtime_memory_data_size(self.context, &memory)
    }

    func withUnsafeMutableBufferPointer<T>(
        offset: UInt,
        count: Int,
        _ body: (UnsafeMutableRawBufferPointer) throws -> T
    ) rethrows -> T {
        var memory = self.memory
        let size = self.api.wasmtime_memory_data_size(self.context, &memory)
        precondition(Int(offset) + count <= size, "guest memory access out of bounds")
        let base = self.api.wasmtime_memory_data(self.context, &memory)!
        return try body(UnsafeMutableRawBufferPointer(start: base + Int(offset), count: count))
    }
}

extension wasmtime_val_t {
    init(_ value: Value) throws {
        switch value {
        case .i32(let bits): self.init(kind: UInt8(WASMTIME_I32), of: wasmtime_valunion_t(i32: Int32(bitPattern: bits)))
        case .i64(let bits): self.init(kind: UInt8(WASMTIME_I64), of: wasmtime_valunion_t(i64: Int64(bitPattern: bits)))
        case .f32(let bits): self.init(kind: UInt8(WASMTIME_F32), of: wasmtime_valunion_t(f32: Float(bitPattern: bits)))
        case .f64(let bits):
            self.init(kind: UInt8(WASMTIME_F64), of: wasmtime_valunion_t(f64: Double(bitPattern: bits)))
        case .v128, .ref: throw GuestError.badArguments(export: "?", reason: "the wasmtime engine passes numbers only")
        }
    }
}

extension Value {
    init(_ value: wasmtime_val_t) {
        switch Int(value.kind) {
        case WASMTIME_I64: self = .i64(UInt64(bitPattern: value.of.i64))
        case WASMTIME_F32: self = .f32(value.of.f32.bitPattern)
        case WASMTIME_F64: self = .f64(value.of.f64.bitPattern)
        default: self = .i32(UInt32(bitPattern: value.of.i32))
        }
    }
}

extension ValueType {
    init(wasmtimeKind kind: UInt8) {
        switch Int(kind) {
        case WASM_I64: self = .i64
        case WASM_F32: self = .f32
        case WASM_F64: self = .f64
        case WASM_V128: self = .v128
        case WASM_I32: self = .i32
        default: self = .ref(.funcRef)
        }
    }

    var wasmtimeKind: UInt8 {
        switch self {
        case .i32: UInt8(WASM_I32)
        case .i64: UInt8(WASM_I64)
        case .f32: UInt8(WASM_F32)
        case .f64: UInt8(WASM_F64)
        case .v128: UInt8(WASM_V128)
        case .ref: 129  // WASM_FUNCREF
        }
    }
}
