import WasmKit

/// A WasmKit instance's exports (``GuestExports``).
struct WasmKitExports: GuestExports {
    let instance: Instance
    /// The store, to grow memory from the host (nil once it is gone).
    let store: Store?

    func hasFunction(_ name: String) -> Bool { self.instance.exports[function: name] != nil }

    func call(_ name: String, _ arguments: [Value]) throws -> [Value] {
        guard let function = self.instance.exports[function: name] else {
            try self.requireFunction(name)
            return []
        }
        return try function.invoke(arguments)
    }

    func global(_ name: String) -> Value? { self.instance.exports[global: name]?.value }

    func setGlobal(_ name: String, _ value: Value) throws {
        guard let global = self.instance.exports[global: name] else {
            throw GuestSnapshotError.malformed("global '\(name)' is not exported by this module")
        }
        try global.assign(value)
    }

    var memory: (any HostMemory)? { self.instance.exports[memory: "memory"] }

    /// WasmKit has no host-side memory.grow: a two-line module that imports the guest's memory
    /// grows it from the inside (under the same memory limit).
    func growMemory(byPages pages: Int) throws -> Bool {
        guard let memory = self.instance.exports[memory: "memory"], let store = self.store else { return false }
        let grower = try parseWasm(bytes: Self.growerModule)
        var imports = Imports()
        imports.define(module: "guest", name: "memory", memory)
        let instance = try grower.instantiate(store: store, imports: imports)
        guard let grow = instance.exports[function: "grow"] else { return false }
        return try grow.invoke([.i32(UInt32(pages))])[0].i32 != UInt32.max
    }

    /// `(module (import "guest" "memory" (memory 0)) (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))`
    static let growerModule: [UInt8] = [
        0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00,  // magic, version
        0x01, 0x06, 0x01, 0x60, 0x01, 0x7F, 0x01, 0x7F,  // type: (i32) -> i32
        0x02, 0x11, 0x01, 0x05, 0x67, 0x75, 0x65, 0x73, 0x74, 0x06, 0x6D, 0x65, 0x6D, 0x6F, 0x72, 0x79, 0x02, 0x00,
        0x00,  // import guest.memory
        0x03, 0x02, 0x01, 0x00,  // function 0 has type 0
        0x07, 0x08, 0x01, 0x04, 0x67, 0x72, 0x6F, 0x77, 0x00, 0x00,  // export "grow"
        0x0A, 0x08, 0x01, 0x06, 0x00, 0x20, 0x00, 0x40, 0x00, 0x0B,  // local.get 0; memory.grow 0; end
    ]
}
