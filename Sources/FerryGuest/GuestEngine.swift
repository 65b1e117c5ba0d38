import Foundation
import WasmKit

/// A guest instantiated by one of the engines: what running one asks of it, on either.
public protocol RunningGuest: AnyObject {
    var module: GuestModule { get }
    var limits: GuestLimits { get }
    /// Calls the exported function `name`.
    @discardableResult func invoke(_ name: String, _ arguments: [Value]) throws -> [Value]
    /// Runs a WASI command's `_start`; returns its exit code.
    func runCommand() throws -> UInt32
    /// Copies `count` bytes of the guest's memory from `offset`.
    func readMemory(offset: Int, count: Int) throws -> [UInt8]
    /// The size of the guest's linear memory, in bytes (0 without one).
    var memoryBytes: Int { get }
    /// Fuel left, when metered.
    var remainingFuel: UInt64? { get }
}

extension RunningGuest {
    /// Calls the exported function `name`, which takes no arguments.
    @discardableResult public func invoke(_ name: String) throws -> [Value] { try self.invoke(name, []) }
}

extension GuestInstance: RunningGuest {}

/// Which engine runs a guest's code.
///
/// - `wasmkit`: WasmKit's interpreter, in pure Swift and always present; quick to start, no
///   compilation, every Ferry feature (checkpoints, the scheduler's suspension, migration).
/// - `wasmtime`: Wasmtime's Cranelift compiler through its C library, loaded at run time when it
///   is installed (``WasmtimeLibrary``); code runs at near-native speed after a compilation that
///   is done once per module.
public enum GuestEngine: String, CaseIterable, Sendable, CustomStringConvertible {
    case wasmkit
    case wasmtime

    /// The engine named by `FERRY_ENGINE`, or WasmKit.
    public static func fromEnvironment() throws -> GuestEngine {
        guard let name = ProcessInfo.processInfo.environment["FERRY_ENGINE"], !name.isEmpty else { return .wasmkit }
        return try Self.named(name)
    }

    /// The engine called `name`, or an error that lists the engines.
    public static func named(_ name: String) throws -> GuestEngine {
        guard let engine = GuestEngine(rawValue: name.lowercased()) else {
            throw GuestError.engineUnavailable(
                engine: name,
                reason:
                    "there is no such engine; the engines are \(Self.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        return engine
    }

    public var description: String { self.rawValue }

    /// Whether it can run here: what it is, or why not and how to get it.
    public var availability: Result<String, GuestError> {
        switch self {
        case .wasmkit: .success("WasmKit interpreter, built in")
        case .wasmtime:
            WasmtimeLibrary.shared.map { library in
                "Wasmtime \(library.version ?? "\(WasmtimeLibrary.majorVersion).x") (Cranelift), \(library.path)"
            }
        }
    }

    /// Instantiates `module` on this engine; its start function, if any, runs now.
    public func instantiate(
        _ module: GuestModule,
        limits: GuestLimits = GuestLimits(),
        environment: GuestEnvironment = GuestEnvironment()
    ) throws -> any RunningGuest {
        switch self {
        case .wasmkit: try GuestInstance(module: module, limits: limits, environment: environment)
        case .wasmtime: try WasmtimeGuest(module: module, limits: limits, environment: environment)
        }
    }
}
