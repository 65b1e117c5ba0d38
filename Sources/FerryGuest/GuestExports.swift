import WasmKit

/// A running instance's exports as Ferry's Asyncify machinery needs them — call a function, read
/// and set a global, reach and grow memory — whichever engine holds the instance. Checkpoints,
/// the scheduler's suspensions and moves are written once against it.
protocol GuestExports {
    /// Whether the instance exports a function `name`.
    func hasFunction(_ name: String) -> Bool
    /// Calls the exported function `name`.
    ///
    /// - Throws: ``GuestSnapshotError/notCheckpointable(_:)`` when there is none.
    @discardableResult func call(_ name: String, _ arguments: [Value]) throws -> [Value]
    /// The value of the exported global `name`, or nil.
    func global(_ name: String) -> Value?
    /// Sets the exported global `name`; throws when there is none or it is constant.
    func setGlobal(_ name: String, _ value: Value) throws
    /// The exported memory named `memory`, or nil.
    var memory: (any HostMemory)? { get }
    /// Grows that memory by `pages`: false when it cannot grow so far.
    func growMemory(byPages pages: Int) throws -> Bool
}

extension GuestExports {
    func requireFunction(_ name: String) throws {
        guard self.hasFunction(name) else {
            throw GuestSnapshotError.notCheckpointable(
                "it does not export \(name) (build it with Asyncify; see Guests/build.sh)"
            )
        }
    }
}
