import FerryWire
import NIOConcurrencyHelpers

/// What makes every call at-most-once: the answers of calls run here, by call id, for a while.
/// A retry of a call that ran gets the first answer; a retry of one still running waits for it.
final class CallLedger: Sendable {
    enum Begin {
        /// Not seen: run it, then ``finish(_:with:executed:)``.
        case run
        /// Ran already; here is its answer.
        case answered(Frame)
        /// Running now; wait for its answer.
        case wait(Task<Frame, Never>)
    }

    private struct Entry {
        var answer: Frame?
        var waiters: [CheckedContinuation<Frame, Never>] = []
        var finishedAt: ContinuousClock.Instant?
    }

    private struct State {
        var entries: [CallID: Entry] = [:]
        var finishedOrder: [CallID] = []
        var head = 0
    }

    /// Answers are kept this long (a retry after it would run again)...
    let retention: Duration
    /// ...and at most this many.
    let capacity: Int
    private let state = NIOLockedValueBox(State())

    init(retention: Duration = .seconds(120), capacity: Int = 200_000) {
        self.retention = retention
        self.capacity = capacity
    }

    func begin(_ id: CallID) -> Begin {
        self.state.withLockedValue { state -> Begin in
            guard let entry = state.entries[id] else {
                state.entries[id] = Entry()
                return .run
            }
            if let answer = entry.answer { return .answered(answer) }
            return .wait(
                Task {
                    await withCheckedContinuation { continuation in
                        let ready: Frame? = self.state.withLockedValue { state in
                            if let answer = state.entries[id]?.answer { return answer }
                            state.entries[id]?.waiters.append(continuation)
                            return nil
                        }
                        if let ready { continuation.resume(returning: ready) }
                    }
                }
            )
        }
    }

    /// Records the answer of a call that `begin` said to run. A call that did not run (forwarded,
    /// refused before it started) is forgotten, so a retry runs it.
    func finish(_ id: CallID, with answer: Frame, executed: Bool) {
        let waiters: [CheckedContinuation<Frame, Never>] = self.state.withLockedValue { state in
            let waiters = state.entries[id]?.waiters ?? []
            if executed {
                state.entries[id] = Entry(answer: answer, finishedAt: .now)
                state.finishedOrder.append(id)
                self.prune(&state)
            } else {
                state.entries[id] = nil
            }
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: answer) }
    }

    private func prune(_ state: inout State) {
        let expired = ContinuousClock.now - self.retention
        while state.head < state.finishedOrder.count {
            let id = state.finishedOrder[state.head]
            let finishedAt = state.entries[id]?.finishedAt
            guard state.finishedOrder.count - state.head > self.capacity || (finishedAt.map { $0 < expired } ?? true)
            else { break }
            state.entries[id] = nil
            state.head += 1
        }
        if state.head > 4096, state.head * 2 > state.finishedOrder.count {
            state.finishedOrder.removeFirst(state.head)
            state.head = 0
        }
    }
}
