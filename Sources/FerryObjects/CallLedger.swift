import FerryWire
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// What makes a retried call run at most once: the answers of calls that ran here, by call id,
/// for a while. A retry of a call that ran gets the first answer; a retry of one still running
/// waits for it. The ledger is this node's, in memory: a retry after ``retention``, after the
/// node restarted, or at another node runs again (the client keeps its deadlines below the
/// retention and repeats non-idempotent calls only at the node that had them).
final class CallLedger: Sendable {
    enum Begin {
        /// Not seen: run it, then ``finish(_:with:executed:)``.
        case run
        /// Ran already, or is running: its answer.
        case answer(EventLoopFuture<Frame>)
    }

    private struct State {
        var entries: [CallID: EventLoopPromise<Frame>] = [:]
        var finished: [(id: CallID, at: ContinuousClock.Instant)] = []
        var head = 0
    }

    /// Answers are kept this long (longer than any call's deadline)...
    static let retention = ObjectLimits.maxCallDeadline + .seconds(20)
    /// ...and at most this many.
    let capacity: Int
    private let state = NIOLockedValueBox(State())

    init(capacity: Int = 200_000) {
        self.capacity = capacity
    }

    func begin(_ id: CallID) -> Begin {
        self.state.withLockedValue { state in
            if let promise = state.entries[id] { return .answer(promise.futureResult) }
            state.entries[id] = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: Frame.self)
            return .run
        }
    }

    /// Records the answer of a call that `begin` said to run, and hands it to every retry that
    /// waits. A call that did not run (forwarded, refused before it started) is forgotten
    /// afterwards, so a later retry runs it.
    func finish(_ id: CallID, with answer: Frame, executed: Bool) {
        let promise: EventLoopPromise<Frame>? = self.state.withLockedValue { state in
            guard let promise = state.entries[id] else { return nil }
            if executed {
                state.finished.append((id, .now))
                self.prune(&state)
            } else {
                state.entries[id] = nil
            }
            return promise
        }
        promise?.succeed(answer)
    }

    private func prune(_ state: inout State) {
        let expired = ContinuousClock.now - Self.retention
        while state.head < state.finished.count {
            let (id, at) = state.finished[state.head]
            guard state.finished.count - state.head > self.capacity || at < expired else { break }
            state.entries[id] = nil
            state.head += 1
        }
        if state.head > 4096, state.head * 2 > state.finished.count {
            state.finished.removeFirst(state.head)
            state.head = 0
        }
    }
}
