import NIOConcurrencyHelpers

/// Asks a running guest, from another thread, to stop at its next safe point so that it can be
/// captured (for a move, or a checkpoint of a guest that never calls `ferry.checkpoint`).
///
/// A module Ferry made movable (``GuestModule/movable()``) comes to a safe point at least every
/// ``SafepointRewriter/countdown`` loop iterations or calls; a module built with Asyncify comes
/// to one at each `ferry.checkpoint`, `ferry.yield` or `ferry.receive_wait`.
public final class GuestInterrupt: Sendable {
    private let state = NIOLockedValueBox<(requested: Bool, refusal: String?)>((false, nil))

    public init() {}

    /// Asks for a capture at the next safe point.
    public func requestCapture() {
        self.state.withLockedValue { $0 = (true, nil) }
    }

    /// Withdraws a request not yet taken.
    public func cancel() {
        self.state.withLockedValue { $0.requested = false }
    }

    /// Whether a capture is asked for and not yet taken.
    public var isRequested: Bool { self.state.withLockedValue { $0.requested } }

    /// Why the last request could not be met (the guest carried on), if it could not.
    public var refusal: String? { self.state.withLockedValue { $0.refusal } }

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
}
