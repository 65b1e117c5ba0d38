import NIOConcurrencyHelpers
import NIOCore

/// One origin request per object however many clients miss it at once, as Varnish's waiting
/// list does: the first miss fetches, the others wait for its outcome.
final class MissCoalescer<Outcome: Sendable>: Sendable {
    private let inFlight = NIOLockedValueBox<[String: EventLoopFuture<Outcome>]>([:])

    /// The outcome of the fetch for `key`: started by `start` when none is in flight (then
    /// `isLeader` is true), joined otherwise. The future completes on `eventLoop`.
    func outcome(
        for key: String,
        on eventLoop: EventLoop,
        start: () -> EventLoopFuture<Outcome>
    ) -> (future: EventLoopFuture<Outcome>, isLeader: Bool) {
        let promise = eventLoop.makePromise(of: Outcome.self)
        let joined: EventLoopFuture<Outcome>? = self.inFlight.withLockedValue { inFlight in
            if let running = inFlight[key] { return running }
            inFlight[key] = promise.futureResult
            return nil
        }
        if let joined {
            joined.hop(to: eventLoop).cascade(to: promise)
            return (promise.futureResult, false)
        }
        // Forgotten before anyone hears the outcome, so a request after it finds the cache.
        promise.futureResult.whenComplete { _ in
            _ = self.inFlight.withLockedValue { $0.removeValue(forKey: key) }
        }
        start().cascade(to: promise)
        return (promise.futureResult, true)
    }
}
