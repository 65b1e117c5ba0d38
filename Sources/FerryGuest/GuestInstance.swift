import Foundation
@_spi(WASIPlatform) import WASI
import WasmKit

/// One running guest: a module instantiated in its own store on one of the engines
/// (``GuestEngine``), with Ferry's host API and WASI preview1, under ``GuestLimits``.
///
/// Confined to the thread that created it (both engines' stores are). Calls into it are
/// synchronous; a guest that spins, eats memory, recurses without end or outlives its deadline is
/// stopped with a ``GuestStop`` and the thread, the process and every other guest carry on.
/// Checkpoints, the scheduler's suspensions and moves work the same on either engine: they drive
/// the module's own Asyncify code through its exports.
public final class GuestInstance {
    public let module: GuestModule
    public let limits: GuestLimits
    /// The engine that runs it.
    public let engine: GuestEngine
    let backend: any GuestBackend
    private let wasi: WASIBridgeToHost
    let suspension = SuspendState()

    /// Instantiates `module` on `engine`. Its start function, if any, runs now, under the same
    /// limits.
    public init(
        module: GuestModule,
        limits: GuestLimits = GuestLimits(),
        environment: GuestEnvironment = GuestEnvironment(),
        engine: GuestEngine = .current
    )
        throws
    {
        self.module = module
        self.limits = limits
        self.engine = engine
        self.suspension.unwindBytes = limits.stackBytes
        self.suspension.maxMemoryBytes = limits.maxMemoryBytes
        let wasi = try GuestWASI.bridge(for: environment)
        self.wasi = wasi
        // Only what the module imports: each host function is an allocation in the new store.
        let imported = Set(module.info.imports.map { "\($0.module).\($0.name)" })
        let suspension = self.suspension
        func functions<Memory: HostMemory & SendableMetatype>(
            _ memory: Memory.Type
        ) -> (@escaping () throws -> Void) -> [HostFunction] {
            { checkDeadline in
                GuestWASI.functions(of: wasi, imported: imported, memory: memory)
                    + FerryHostAPI.functions(
                        imported: imported,
                        environment: environment,
                        suspension: suspension,
                        checkDeadline: checkDeadline
                    )
            }
        }
        do {
            switch engine {
            case .wasmkit:
                self.backend = try WasmKitBackend(
                    module: module,
                    limits: limits,
                    functions: functions(WasmKit.Memory.self)
                )
            case .wasmtime:
                self.backend = try WasmtimeBackend(
                    module: module,
                    limits: limits,
                    functions: functions(WasmtimeMemory.self)
                )
            }
        } catch {
            try? wasi.close()
            throw error
        }
        self.suspension.flag = self.backend.safepointFlag
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
        // The signature is the module's: read once at load, the same on either engine.
        let parameters = try self.module.parameters(of: name)
        guard parameters == arguments.map(Self.type(of:)) else {
            throw GuestError.badArguments(
                export: name,
                reason:
                    "it takes (\(parameters.map { "\($0)" }.joined(separator: ", "))), got \(arguments.count) argument(s)"
            )
        }
        return try self.backend.invoke(name, arguments)
    }

    /// Runs a WASI command's `_start`; returns its exit code.
    public func runCommand() throws -> UInt32 {
        do {
            try self.invoke("_start")
            return 0
        } catch let exit as GuestExit {
            return exit.code
        }
    }

    /// The signature of export `name`, to turn text arguments into values.
    public func parameters(of name: String) throws -> [ValueType] {
        try self.module.parameters(of: name)
    }

    /// Copies `count` bytes of the guest's memory from `offset`.
    public func readMemory(offset: Int, count: Int) throws -> [UInt8] {
        guard let memory = self.exports.memory else {
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

    /// The size of the guest's linear memory, in bytes (0 without one).
    public var memoryBytes: Int { self.exports.memory?.byteCount ?? 0 }

    /// Fuel left, when metered.
    public var remainingFuel: UInt64? { self.backend.remainingFuel }

    /// The instance's exports, for Asyncify and snapshots.
    var exports: any GuestExports { self.backend.exports }

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
