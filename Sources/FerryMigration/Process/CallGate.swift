import NIOConcurrencyHelpers

/// Calls to a process (`ferry send`), one at a time, and held back while it moves: a move closes
/// the gate before it stops the process and waits for the call in progress to be answered, so no
/// call is ever half-answered by a process that left. Calls that came meanwhile wait at the gate,
/// and are told where the process went once it has (or go in, when the move failed): their
/// callers send them there, and each call reaches the process exactly once.
final class CallGate: Sendable {
    private struct State {
        var busy = false
        var closed = false
        /// The process left or ended: nobody goes in any more.
        var shut = false
        var waiting: [CheckedContinuation<Bool, Never>] = []
        var drained: CheckedContinuation<Void, Never>?
    }

    private let state: NIOLockedValueBox<State>

    /// A gate `closed` until ``open()`` (a process arriving, until it runs here).
    init(closed: Bool = false) {
        self.state = NIOLockedValueBox(State(closed: closed))
    }

    /// Waits for its turn; false when the process left or ended meanwhile.
    func enter() async -> Bool {
        await withCheckedContinuation { continuation in
            let now = self.state.withLockedValue { state -> Bool? in
                if state.shut { return false }
                if !state.busy && !state.closed {
                    state.busy = true
                    return true
                }
                state.waiting.append(continuation)
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
    }

    /// The call was answered: the next goes in, or a move waiting for it goes on.
    func leave() {
        let (next, drained) = self.state.withLockedValue { state in
            state.busy = false
            defer { state.drained = nil }
            return (self.admitNext(&state), state.drained)
        }
        next?.resume(returning: true)
        drained?.resume()
    }

    /// Closes the gate for a move, and waits for the call in progress, if any, for at most `timeout`.
    func close(timeout: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = self.state.withLockedValue { state in
                state.closed = true
                if state.busy { state.drained = continuation }
                return !state.busy
            }
            if idle {
                continuation.resume()
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                self.state.withLockedValue { state in
                    defer { state.drained = nil }
                    return state.drained
                }?.resume()
            }
        }
    }

    /// The move failed: calls go in again.
    func open() {
        let next = self.state.withLockedValue { state in
            state.closed = false
            return self.admitNext(&state)
        }
        next?.resume(returning: true)
    }

    /// The process left or ended: those waiting are told.
    func shut() {
        let waiting = self.state.withLockedValue { state in
            state.shut = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for waiter in waiting { waiter.resume(returning: false) }
    }

    private func admitNext(_ state: inout State) -> CheckedContinuation<Bool, Never>? {
        guard !state.busy, !state.closed, !state.shut, !state.waiting.isEmpty else { return nil }
        state.busy = true
        return state.waiting.removeFirst()
    }
}
