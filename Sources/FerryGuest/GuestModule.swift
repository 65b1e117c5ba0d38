import Crypto
import Foundation
import NIOConcurrencyHelpers
import WAT
@_spi(Fuzzing) import WasmKit
import WasmParser

/// A WebAssembly module Ferry has checked and will run: machine-independent code, the seed's
/// answer to heterogeneity.
///
/// Loading validates the whole module before anything runs — structure, limits, and every
/// function body (WasmKit would otherwise check a body only on its first call) — so a bad module
/// is refused with a reason at load time, never half-way through a run.
public struct GuestModule: Sendable {
    /// The module's binary form (text is translated on load).
    public let bytes: [UInt8]
    /// What it imports, exports and needs.
    public let info: GuestModuleInfo
    /// Its SHA-256: the name a node's code cache, a snapshot and a signature know it by.
    public let digest: ModuleDigest
    /// The digest of the module this one was made from by ``movable()``; its own otherwise.
    public let sourceDigest: ModuleDigest
    let module: Module

    /// Loads a module from a `.wasm` or `.wat` file.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GuestError.cannotRead(path: path)
        }
        try self.init(bytes: [UInt8](data), name: path)
    }

    /// Loads a module from bytes: the binary format, or the text format (recognised by its first
    /// non-blank character being `(`).
    public init(bytes: [UInt8], name: String = "module") throws {
        try self.init(bytes: bytes, name: name, sourceDigest: nil)
    }

    init(bytes: [UInt8], name: String, sourceDigest: ModuleDigest?) throws {
        let binary: [UInt8]
        if bytes.starts(with: [0x00, 0x61, 0x73, 0x6D]) {
            binary = bytes
        } else if bytes.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "(") {
            do {
                binary = try wat2wasm(String(decoding: bytes, as: UTF8.self))
            } catch {
                throw GuestError.invalidModule(name: name, reason: "not valid WebAssembly text: \(error)")
            }
        } else {
            throw GuestError.invalidModule(
                name: name,
                reason:
                    "neither WebAssembly binary (it does not start with \\0asm) nor text (it does not start with '(')"
            )
        }
        let module: Module
        do {
            module = try parseWasm(bytes: binary)
        } catch {
            throw GuestError.invalidModule(name: name, reason: "\(error)")
        }
        try Self.validate(module, name: name)
        self.bytes = binary
        self.module = module
        self.info = try GuestModuleInfo(bytes: binary, module: module)
        self.digest = ModuleDigest(of: binary)
        self.sourceDigest = sourceDigest ?? self.digest
    }

    /// The parameter types of the exported function `name`, to read text arguments by.
    ///
    /// - Throws: ``GuestError/noSuchExport(name:available:)``.
    public func parameters(of name: String) throws -> [ValueType] {
        guard let parameters = self.info.parameterTypes[name] else {
            throw GuestError.noSuchExport(
                name: name,
                available: self.info.exports.filter { $0.kind == "function" }.map(\.name)
            )
        }
        return parameters
    }

    /// Compiles every function body once in a scratch store with stub imports and no start
    /// function, so that invalid code is found now.
    private static func validate(_ module: Module, name: String) throws {
        var module = module
        module.dropStartFunction()
        let store = Store(engine: Engine(configuration: EngineConfiguration(compilationMode: .eager)))
        store.resourceLimiter = ValidationLimiter()
        var imports = Imports()
        do {
            for entry in module.imports {
                let value: any ExternalValueConvertible
                switch entry.descriptor {
                case .function(let typeIndex):
                    guard let type = module.functionType(at: typeIndex) else {
                        throw GuestError.invalidModule(
                            name: name,
                            reason:
                                "import \(entry.module).\(entry.name) names type \(typeIndex), which is not a function type"
                        )
                    }
                    value = Function(store: store, type: type) { _, _ in
                        throw GuestError.invalidModule(name: name, reason: "validation called an import")
                    }
                case .global(let type):
                    value = try Global(store: store, type: type, value: Self.zero(type.valueType))
                case .memory(let type):
                    value = try WasmKit.Memory(store: store, type: type)
                case .table(let type):
                    value = try WasmKit.Table(store: store, type: type)
                case .tag(let typeIndex):
                    guard let type = module.functionType(at: typeIndex) else { continue }
                    value = Tag(store: store, type: type)
                }
                imports.define(module: entry.module, name: entry.name, value.externalValue)
            }
            _ = try module.instantiate(store: store, imports: imports)
        } catch let error as GuestError {
            throw error
        } catch {
            throw GuestError.invalidModule(name: name, reason: "\(error)")
        }
    }

    private static func zero(_ type: ValueType) -> Value {
        switch type {
        case .i32: .i32(0)
        case .i64: .i64(0)
        case .f32: .f32(0)
        case .f64: .f64(0)
        case .v128: .v128(V128(bytes: [UInt8](repeating: 0, count: V128.byteCount)))
        case .ref(let reference): reference.heapType == .externRef ? .ref(.extern(nil)) : .ref(.function(nil))
        }
    }
}

/// A module's SHA-256, shown as 64 hex digits.
public struct ModuleDigest: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The 32 bytes.
    public let bytes: [UInt8]

    public init(of module: [UInt8]) {
        self.bytes = Array(SHA256.hash(data: module))
    }

    /// From 32 bytes, or nil.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.bytes = bytes
    }

    /// From 64 hex digits, or nil.
    public init?(hex: String) {
        guard hex.utf8.count == 64, let bytes = GuestValues.bytes(hex: hex) else { return nil }
        self.bytes = bytes
    }

    public var hex: String { self.bytes.map { String(format: "%02x", $0) }.joined() }
    public var description: String { self.hex }
    /// The first 12 hex digits, for tables.
    public var short: String { String(self.hex.prefix(12)) }
}

/// Validation instantiates in a scratch store: keep it from reserving what the module asks for
/// beyond what any run would be allowed.
private final class ValidationLimiter: ResourceLimiter {
    func limitMemoryGrowth(to desired: Int) throws -> Bool { desired <= 4 << 30 }
    func limitTableGrowth(to desired: Int) throws -> Bool { desired <= 10_000_000 }
}

/// A module's imports, exports and memory, for `ferry guest inspect` and for checks before a run.
public struct GuestModuleInfo: Sendable, Equatable, Codable {
    public struct Import: Sendable, Equatable, Codable {
        public var module: String
        public var name: String
        public var kind: String
    }

    public struct Export: Sendable, Equatable, Codable {
        public var name: String
        public var kind: String
        /// `(i32, i32) -> i64` for functions.
        public var signature: String?
    }

    public var imports: [Import]
    public var exports: [Export]
    /// The first memory's initial and maximum size in 64 KiB pages.
    public var memoryPages: UInt64?
    public var memoryMaximumPages: UInt64?
    /// Whether the module exports its stack pointer and mutable globals can be restored: needed
    /// to capture and restore a running guest.
    public var exportsStackPointer: Bool
    /// Whether the module carries Asyncify's exports (`asyncify_start_unwind` and the rest).
    public var hasAsyncify: Bool

    public var canBeCheckpointed: Bool { self.exportsStackPointer && self.hasAsyncify }
    /// Each exported function's parameter types.
    var parameterTypes: [String: [ValueType]] = [:]

    enum CodingKeys: String, CodingKey {
        case imports, exports, memoryPages, memoryMaximumPages, exportsStackPointer, hasAsyncify
    }

    init(bytes: [UInt8], module: Module) throws {
        var types: [FunctionType] = []
        var functionTypes: [UInt32] = []  // imported functions first, then defined ones
        var memories: [MemoryType] = []
        var parser = WasmParser.Parser(bytes: bytes)
        while let payload = try parser.parseNext() {
            switch payload {
            case .typeSection(let groups):
                types = groups.flatMap(\.types).map { subType -> FunctionType in
                    if case .function(let type) = subType.body { return type }
                    return FunctionType(parameters: [], results: [])
                }
            case .importSection(let imports):
                for entry in imports {
                    if case .function(let index) = entry.descriptor { functionTypes.append(index) }
                    if case .memory(let type) = entry.descriptor { memories.append(type) }
                }
            case .functionSection(let indices):
                functionTypes += indices
            case .memorySection(let defined):
                memories += defined.map(\.type)
            default:
                break
            }
        }
        func signature(_ functionIndex: UInt32) -> String? {
            guard Int(functionIndex) < functionTypes.count, Int(functionTypes[Int(functionIndex)]) < types.count else {
                return nil
            }
            let type = types[Int(functionTypes[Int(functionIndex)])]
            let parameters = type.parameters.map { "\($0)" }.joined(separator: ", ")
            let results = type.results.map { "\($0)" }.joined(separator: ", ")
            return "(\(parameters)) -> (\(results))"
        }
        self.imports = module.imports.map { entry in
            let kind: String
            switch entry.descriptor {
            case .function: kind = "function"
            case .table: kind = "table"
            case .memory: kind = "memory"
            case .global: kind = "global"
            case .tag: kind = "tag"
            }
            return Import(module: entry.module, name: entry.name, kind: kind)
        }
        for entry in module.exports {
            guard case .function(let index) = entry.descriptor, Int(index) < functionTypes.count,
                Int(functionTypes[Int(index)]) < types.count
            else { continue }
            self.parameterTypes[entry.name] = types[Int(functionTypes[Int(index)])].parameters
        }
        self.exports = module.exports.map { entry in
            switch entry.descriptor {
            case .function(let index): Export(name: entry.name, kind: "function", signature: signature(index))
            case .table: Export(name: entry.name, kind: "table", signature: nil)
            case .memory: Export(name: entry.name, kind: "memory", signature: nil)
            case .global: Export(name: entry.name, kind: "global", signature: nil)
            case .tag: Export(name: entry.name, kind: "tag", signature: nil)
            }
        }
        self.memoryPages = memories.first?.min
        self.memoryMaximumPages = memories.first?.max
        let exported = Set(self.exports.map(\.name))
        self.exportsStackPointer = exported.contains("__stack_pointer")
        self.hasAsyncify = [
            "asyncify_start_unwind", "asyncify_stop_unwind", "asyncify_start_rewind", "asyncify_stop_rewind",
        ].allSatisfy(exported.contains)
    }
}

/// Modules by their bytes: a module is parsed and validated once, then instantiated as often as
/// needed. (WasmKit translates function bodies per store, so each instance still compiles the
/// functions it calls.)
public final class GuestModuleCache: Sendable {
    private let modules = NIOLockedValueBox<[[UInt8]: GuestModule]>([:])

    public init() {}

    /// The module for `bytes`, loaded and validated on first use.
    public func module(for bytes: [UInt8], name: String = "module") throws -> GuestModule {
        if let cached = self.modules.withLockedValue({ $0[bytes] }) { return cached }
        let module = try GuestModule(bytes: bytes, name: name)
        self.modules.withLockedValue { $0[module.bytes] = module }
        if module.bytes != bytes { self.modules.withLockedValue { $0[bytes] = module } }
        return module
    }

    /// How many distinct modules are held.
    public var count: Int { self.modules.withLockedValue { Set($0.values.map(\.bytes)).count } }
}
