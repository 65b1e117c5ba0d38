import NIOConcurrencyHelpers

extension GuestModule {
    /// The imports at which a movable module's stack can be unwound.
    static let unwindImports = [
        "ferry.safepoint", "ferry.go", "ferry.go_weak", "ferry.checkpoint", "ferry.yield", "ferry.receive_wait",
    ]

    /// Whether Ferry made this module movable (``movable()``).
    public var isMovable: Bool { self.info.exports.contains { $0.name == SafepointRewriter.unwindBufferExport } }

    /// Whether a call in progress can be captured with its stack: a module made movable, at any
    /// moment; one built with Asyncify and a checkpoint buffer, at its own unwinding calls.
    public var canBeCaptured: Bool { self.isMovable || self.info.canBeCheckpointed }

    /// This module as Ferry runs it on a node: any wasm32 module, as compiled, made able to stop
    /// at a safe point within a few thousand loop iterations or calls and to have its call stack
    /// saved there and rebuilt elsewhere (strong mobility), with no change to its source and
    /// nothing for its author to link. Safe points are added by ``SafepointRewriter``; the stack
    /// is saved by Binaryen's Asyncify (`libbinaryen.so`, loaded in process). The result is
    /// cached by digest, so each module is instrumented once per process.
    ///
    /// A module that can already be captured (built with Asyncify) is returned as it is.
    ///
    /// - Throws: ``GuestError/cannotMakeMovable(name:reason:)`` when it uses what Asyncify cannot
    ///   unwind (exceptions, tail calls, GC types) or Binaryen is not installed.
    public func movable() throws -> GuestModule {
        if self.info.hasAsyncify { return self }
        if let cached = MovableModules.shared.withLockedValue({ $0[self.digest] }) { return cached }
        let made: GuestModule
        do {
            let rewritten = try SafepointRewriter.rewrite(self.bytes)
            let bytes = try Binaryen.asyncify(
                rewritten.bytes,
                stubIndex: rewritten.stubIndex,
                unwindImports: Self.unwindImports
            )
            made = try GuestModule(bytes: bytes, name: "movable \(self.digest.short)", sourceDigest: self.digest)
        } catch let refusal as SafepointRewriter.Refusal {
            throw GuestError.cannotMakeMovable(name: self.digest.short, reason: refusal.description)
        } catch {
            throw GuestError.cannotMakeMovable(name: self.digest.short, reason: "\(error)")
        }
        MovableModules.shared.withLockedValue { $0[self.digest] = made }
        return made
    }
}

/// Movable forms of the modules this process has run, by the digest of the original.
private enum MovableModules {
    static let shared = NIOLockedValueBox<[ModuleDigest: GuestModule]>([:])
}
