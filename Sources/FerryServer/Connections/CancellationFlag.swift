import NIOConcurrencyHelpers

/// Set once when a request is to stop; the code sending the response checks it between chunks
/// and while it waits for the client, and may register a handler to be woken at once.
public final class CancellationFlag: Sendable {
    // A struct, not a tuple: a lock box over a tuple looks up tuple metadata at run time on every use.
    private struct State {
        var cancelled = false
        var handler: (@Sendable () -> Void)?
    }

    private let state = NIOLockedValueBox(State())

    /// When the request began: its latency is measured from here.
    public let started = ContinuousClock.now

    public init() {}

    public var isCancelled: Bool { self.state.withLockedValue { $0.cancelled } }

    /// Sets the flag. Returns `false` when it was already set.
    @discardableResult
    public func cancel() -> Bool {
        let handler: (@Sendable () -> Void)?? = self.state.withLockedValue { state in
            guard !state.cancelled else { return .none }
            state.cancelled = true
            defer { state.handler = nil }
            return .some(state.handler)
        }
        guard case .some(let body) = handler else { return false }
        body?()
        return true
    }

    /// Runs `body` when the flag is set (at once if it already is).
    public func onCancel(_ body: @escaping @Sendable () -> Void) {
        let runNow = self.state.withLockedValue { state in
            if state.cancelled { return true }
            state.handler = body
            return false
        }
        if runNow { body() }
    }
}
