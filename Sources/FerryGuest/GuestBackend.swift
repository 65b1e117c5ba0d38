import WasmKit

/// One engine's instance of a module, behind a ``GuestInstance``: the engine runs the code and
/// enforces the limits; everything above (argument checks, Asyncify, snapshots, the scheduler)
/// is the instance's, written once.
protocol GuestBackend: AnyObject {
    /// Calls the exported function `name` with arguments that fit its signature; a stop is
    /// reported as ``GuestStop``, a `proc_exit` as ``GuestExit``.
    func invoke(_ name: String, _ arguments: [Value]) throws -> [Value]
    /// The instance's exports.
    var exports: any GuestExports { get }
    /// Fuel left, when metered.
    var remainingFuel: UInt64? { get }
    /// A movable module's safe-point flag, when other threads can raise it on this engine.
    var safepointFlag: SafepointFlag? { get }
}
