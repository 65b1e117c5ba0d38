import NIOConcurrencyHelpers

/// Lets one invocation through at a time, in arrival order: the `single` and `perObject`
/// threading policies. Waiting suspends the task; it never blocks a thread.
final class InvocationGate: Sendable {
    private struct State {
        var busy = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var head = 0
    }

    private let state = NIOLockedValueBox(State())

    func enter() async {
        let entered = self.state.withLockedValue { state in
            if state.busy { return false }
            state.busy = true
            return true
        }
        if entered { return }
        await withCheckedContinuation { continuation in
            let now = self.state.withLockedValue { state in
                if !state.busy {
                    state.busy = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Hands the gate to the next waiter, or opens it.
    func leave() {
        let next: CheckedContinuation<Void, Never>? = self.state.withLockedValue { state in
            guard state.head < state.waiters.count else {
                state.busy = false
                state.waiters.removeAll(keepingCapacity: true)
                state.head = 0
                return nil
            }
            defer { state.head += 1 }
            return state.waiters[state.head]
        }
        next?.resume()
    }
}
