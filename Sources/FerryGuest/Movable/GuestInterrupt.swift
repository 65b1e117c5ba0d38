import NIOConcurrencyHelpers
import WasmKit

/// Asks a running guest, from another thread, to stop at its next safe point so that it can be
/// captured (for a move, or a checkpoint of a guest that never calls `ferry.checkpoint`).
///
/// A module Ferry made movable (``GuestModule/movable()``) tests a flag at every loop header and
/// call: setting it brings the guest to the host within one iteration. A module built with
/// Asyncify comes to the host at each `ferry.checkpoint`, `ferry.yield` or `ferry.receive_wait`.
public final class GuestInterrupt: Sendable {
    private struct State {
        var requested = false
        var refusal: String?
        /// The running instance's safe-point flag, while it has one.
        var flag: SafepointFlag?
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// Asks for a capture at the next safe point.
    public func requestCapture() {
        self.state.withLockedValue { state in
            state.requested = true
            state.refusal = nil
            state.flag?.raise()
        }
    }

    /// Withdraws a request not yet taken.
    public func cancel() {
        self.state.withLockedValue { $0.requested = false }
    }

    /// Whether a capture is asked for and not yet taken.
    public var isRequested: Bool { self.state.withLockedValue { $0.requested } }

    /// Why the last request could not be met (the guest carried on), if it could not.
    public var refusal: String? { self.state.withLockedValue { $0.refusal } }

    /// Brings the guest to its next safe point without asking for anything (the scheduler looks
    /// there whether its slice is over).
    func poke() {
        self.state.withLockedValue { $0.flag?.raise() }
    }

    /// At a safe point: takes the request, if there is one.
    func take() -> Bool {
        self.state.withLockedValue { state in
            defer { state.requested = false }
            return state.requested
        }
    }

    func refuse(_ reason: String) {
        self.state.withLockedValue { $0.refusal = reason }
    }

    /// Binds the flag of the instance about to run, or unbinds it (nil) before the instance goes:
    /// the flag is never written after its store is freed.
    func attach(_ flag: SafepointFlag?) {
        self.state.withLockedValue { state in
            state.flag = flag
            if state.requested { flag?.raise() }
        }
    }
}

/// A movable instance's `__ferry_safepoint` global, which other threads raise. The store is
/// otherwise confined to the guest's thread; the flag is one aligned word that the guest only
/// reads and the host clears on the guest's thread before it looks at what was asked, so a
/// raise is never lost (the same reasoning as the deadline watchdog's write of the fuel counter).
struct SafepointFlag: @unchecked Sendable {
    let global: Global

    func raise() { try? self.global.assign(.i32(1)) }
    func clear() { try? self.global.assign(.i32(0)) }
}
