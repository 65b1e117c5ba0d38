import Foundation
import NIOConcurrencyHelpers
import WasmKit

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

    /// The engine guests run on when none is named: `FERRY_ENGINE`'s, else WasmKit; a command that
    /// takes `--engine` sets it for its process.
    public static var current: GuestEngine {
        get { Self.chosen.withLockedValue { $0 } }
        set { Self.chosen.withLockedValue { $0 = newValue } }
    }

    private static let chosen = NIOLockedValueBox((try? GuestEngine.fromEnvironment()) ?? .wasmkit)

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
}
