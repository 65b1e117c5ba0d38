import CFerryWasmtime
import Foundation
import WasmKit

/// A Wasmtime instance's exports (``GuestExports``): reached through the instance between calls,
/// or through the caller during a host call.
struct WasmtimeExports: GuestExports {
    enum Source {
        case instance(wasmtime_instance_t)
        case caller(OpaquePointer)
    }

    let library: WasmtimeLibrary
    let context: OpaquePointer
    let calls: WasmtimeCalls
    let source: Source

    private func lookup(_ name: String, kind: Int) -> wasmtime_extern_t? {
        var found = wasmtime_extern_t()
        let api = self.library.api
        let present = name.withCString { pointer -> Bool in
            switch self.source {
            case .instance(var instance):
                api.wasmtime_instance_export_get(self.context, &instance, pointer, strlen(pointer), &found)
            case .caller(let caller):
                api.wasmtime_caller_export_get(caller, pointer, strlen(pointer), &found)
            }
        }
        guard present, Int(found.kind) == kind else { return nil }
        return found
    }

    func hasFunction(_ name: String) -> Bool { self.lookup(name, kind: WASMTIME_EXTERN_FUNC) != nil }

    func call(_ name: String, _ arguments: [Value]) throws -> [Value] {
        guard var function = self.lookup(name, kind: WASMTIME_EXTERN_FUNC)?.of.func else {
            try self.requireFunction(name)
            return []
        }
        let api = self.library.api
        let type = api.wasmtime_func_type(self.context, &function)
        let resultCount = api.wasm_functype_results(type)?.pointee.size ?? 0
        api.wasm_functype_delete(type)
        let values = try arguments.map(wasmtime_val_t.init)
        var answers = [wasmtime_val_t](repeating: wasmtime_val_t(), count: resultCount)
        try self.calls.run(context: self.context) { trap in
            api.wasmtime_func_call(self.context, &function, values, values.count, &answers, answers.count, &trap)
        }
        return answers.map(Value.init)
    }

    func global(_ name: String) -> Value? {
        guard var global = self.lookup(name, kind: WASMTIME_EXTERN_GLOBAL)?.of.global else { return nil }
        var value = wasmtime_val_t()
        self.library.api.wasmtime_global_get(self.context, &global, &value)
        return Value(value)
    }

    func setGlobal(_ name: String, _ value: Value) throws {
        guard var global = self.lookup(name, kind: WASMTIME_EXTERN_GLOBAL)?.of.global else {
            throw GuestSnapshotError.malformed("global '\(name)' is not exported by this module")
        }
        var raw = try wasmtime_val_t(value)
        if let error = self.library.api.wasmtime_global_set(self.context, &global, &raw) {
            throw GuestSnapshotError.malformed("global '\(name)': \(self.library.consume(error))")
        }
    }

    var memory: (any HostMemory)? { self.wasmtimeMemory }

    var wasmtimeMemory: WasmtimeMemory? {
        guard let memory = self.lookup("memory", kind: WASMTIME_EXTERN_MEMORY)?.of.memory else { return nil }
        return WasmtimeMemory(api: self.library.api, context: self.context, memory: memory)
    }

    func growMemory(byPages pages: Int) throws -> Bool {
        guard var memory = self.lookup("memory", kind: WASMTIME_EXTERN_MEMORY)?.of.memory else { return false }
        var previous: UInt64 = 0
        guard let error = self.library.api.wasmtime_memory_grow(self.context, &memory, UInt64(pages), &previous) else {
            return true
        }
        _ = self.library.consume(error)
        return false
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
