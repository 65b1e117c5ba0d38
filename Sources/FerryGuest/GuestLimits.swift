/// What one guest may use. A guest over a limit is stopped with a ``GuestStop`` that says which
/// limit and by how much; the host and every other guest carry on.
public struct GuestLimits: Sendable, Equatable {
    /// Fuel: roughly one unit per WebAssembly operator executed. Nil: unmetered.
    public var fuel: UInt64?
    /// Linear memory, in bytes (a multiple of 64 KiB pages).
    public var maxMemoryBytes: Int
    /// Wall-clock time for one call into the guest.
    public var deadline: Duration?
    /// The interpreter's stack, which bounds the call-stack depth.
    public var stackBytes: Int

    public init(
        fuel: UInt64? = nil,
        maxMemoryBytes: Int = 64 << 20,
        deadline: Duration? = nil,
        stackBytes: Int = 512 << 10
    ) {
        self.fuel = fuel
        self.maxMemoryBytes = maxMemoryBytes
        self.deadline = deadline
        self.stackBytes = stackBytes
    }

    /// Whether the engine has to meter fuel: for a fuel budget, and for a deadline, which is
    /// enforced by taking the fuel away.
    var needsMetering: Bool { self.fuel != nil || self.deadline != nil }
}

/// Why a guest was stopped.
public enum GuestStop: Error, Equatable, Sendable, CustomStringConvertible {
    case outOfFuel(budget: UInt64)
    case memoryLimit(limitBytes: Int, requestedBytes: Int)
    case deadline(Duration)
    case callStackExhausted(stackBytes: Int)
    /// Any other trap: `unreachable`, division by zero, out-of-bounds access...
    case trap(String)
    /// A host function refused the guest's call.
    case badHostCall(String)

    public var description: String {
        switch self {
        case .outOfFuel(let budget): "out of fuel after \(budget) units"
        case .memoryLimit(let limit, let requested):
            "memory limit \(Self.size(limit)) (the guest asked for \(Self.size(requested)))"
        case .deadline(let deadline): "deadline of \(deadline) passed"
        case .callStackExhausted(let bytes): "call stack exhausted (\(Self.size(bytes)) of stack)"
        case .trap(let reason): "trap: \(reason)"
        case .badHostCall(let reason): "bad host call: \(reason)"
        }
    }

    /// `64 MiB`, `512 KiB`, or `100 bytes`: a size as people write it.
    public static func size(_ bytes: Int) -> String {
        if bytes >= 1 << 20, bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10, bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}

/// Why a module could not be loaded or run at all.
public enum GuestError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotRead(path: String)
    case invalidModule(name: String, reason: String)
    case noSuchExport(name: String, available: [String])
    case badArguments(export: String, reason: String)
    case cannotInstantiate(reason: String)
    case badDirectory(spec: String, reason: String)
    case schedulerStopped
    /// The module cannot be made movable (``GuestModule/movable()``).
    case cannotMakeMovable(name: String, reason: String)
    /// The engine asked for cannot run here (``GuestEngine``).
    case engineUnavailable(engine: String, reason: String)

    public var description: String {
        switch self {
        case .cannotRead(let path): "cannot read \(path): no such file, or not readable"
        case .invalidModule(let name, let reason):
            "\(name) is not a valid WebAssembly module, refused before running: \(reason)"
        case .noSuchExport(let name, let available):
            "the module exports no function '\(name)'; it exports: \(available.joined(separator: ", "))"
        case .badArguments(let export, let reason): "cannot call \(export): \(reason)"
        case .cannotInstantiate(let reason): "cannot start the guest: \(reason)"
        case .badDirectory(let spec, let reason): "cannot give the guest directory \(spec): \(reason)"
        case .schedulerStopped: "the scheduler was shut down before the guest finished"
        case .cannotMakeMovable(let name, let reason):
            "module \(name) cannot be made movable (it can still run, and move weakly): \(reason)"
        case .engineUnavailable(let engine, let reason): "the \(engine) engine is not available: \(reason)"
        }
    }
}

/// A WASI command ended itself with `proc_exit`: how a call into `_start` ends with a code.
public struct GuestExit: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: UInt32

    public init(code: UInt32) { self.code = code }

    public var description: String { "the guest exited with code \(self.code)" }
}
