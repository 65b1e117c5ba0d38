import FerryHTTP
import Testing

@testable import FerrySwitch

/// The l7 switch's rules for one client connection, without sockets: time is passed in.
@Suite struct ExchangeStateTests {
    static let second: UInt64 = 1_000_000_000
    static let timeouts = ExchangeState.Timeouts(
        client: ClientTimeouts(header: .seconds(10), body: .seconds(20), idle: .seconds(60)),
        backend: 30 * second
    )

    /// A connection that has sent a GET (`repeatable`) at time 0.
    static func forwarding(repeatable: Bool = true) -> ExchangeState {
        var state = ExchangeState(timeouts: Self.timeouts, now: 0)
        state.requestStarted(repeatable: repeatable, keepAlive: true, bodyFollows: false, now: 0)
        return state
    }

    @Test func aHeadThatDoesNotArriveInTimeGets408AndASilentConnectionJustCloses() {
        let state = ExchangeState(timeouts: Self.timeouts, now: 0)
        #expect(state.expired(now: 10 * Self.second, retiring: false, hasRequestBytes: true) == nil)
        #expect(
            state.expired(now: 10 * Self.second + 1, retiring: false, hasRequestBytes: true)
                == .refuse(status: 408, reason: "Request Timeout", message: "the request head did not arrive in time")
        )
        #expect(state.expired(now: 10 * Self.second + 1, retiring: false, hasRequestBytes: false) == .close)
    }

    @Test func aBackendThatDoesNotAnswerGives504UntilItsAnswerHasBegun() {
        var state = Self.forwarding()
        #expect(state.expired(now: 20 * Self.second, retiring: false, hasRequestBytes: false) == nil)
        #expect(
            state.expired(now: 31 * Self.second, retiring: false, hasRequestBytes: false)
                == .refuse(status: 504, reason: "Gateway Timeout", message: "the backend did not answer in time")
        )
        state.responseStarted(untilClose: false, requestComplete: true, retiring: false, now: 25 * Self.second)
        // Each byte of the answer moves the deadline; a silence after the head closes the
        // connection, since half an answer cannot become a 504.
        state.responseProgressed(now: 50 * Self.second)
        #expect(state.expired(now: 79 * Self.second, retiring: false, hasRequestBytes: false) == nil)
        #expect(state.expired(now: 81 * Self.second, retiring: false, hasRequestBytes: false) == .close)
    }

    @Test func anIdempotentRequestGoesToAnotherBackendWhenOneFailsBeforeAnswering() {
        var state = Self.forwarding()
        state.picked(0)
        #expect(state.backendFailed(0, reused: false) == .retry)
        #expect(state.excluded(outside: [3]) == [0, 3])
        state.picked(1)
        #expect(state.backendFailed(1, reused: false) == .retry)
        #expect(state.excluded(outside: []) == [0, 1])
        // With every backend tried, the client learns that none could answer (not that none exists).
        #expect(
            state.noBackendLeft()
                == .refuse(status: 502, reason: "Bad Gateway", message: "no backend could answer this request")
        )
    }

    @Test func backendsPastTheSixtyFourthAreExcludedToo() {
        var state = Self.forwarding()
        for backend in [63, 64, 200] {
            state.picked(backend)
            #expect(state.backendFailed(backend, reused: false) == .retry)
        }
        #expect(state.excluded(outside: [1]) == [1, 63, 64, 200])
        state.picked(0)
        #expect(state.backendFailed(0, reused: true) == .retry)
        #expect(state.excluded(outside: []) == [63, 64, 200], "a stale pooled connection's backend stays in")
        state.requestStarted(repeatable: true, keepAlive: true, bodyFollows: false, now: 1)
        #expect(state.excluded(outside: []).isEmpty, "each request starts with none tried")
    }

    @Test func aStalePooledConnectionDoesNotCountAgainstItsBackend() {
        var state = Self.forwarding()
        state.picked(2)
        #expect(state.backendFailed(2, reused: true) == .retry)
        #expect(state.excluded(outside: []).isEmpty, "the same backend may take the request on a fresh connection")
    }

    @Test func aRequestThatMayNotBeRepeatedGets502AndOneWithNoBackend503() {
        var state = Self.forwarding(repeatable: false)
        #expect(
            state.noBackendLeft()
                == .refuse(
                    status: 503,
                    reason: "Service Unavailable",
                    message: "no backend is available for this request"
                )
        )
        state.picked(0)
        #expect(
            state.backendFailed(0, reused: false)
                == .refuse(status: 502, reason: "Bad Gateway", message: "the backend failed before answering")
        )
    }

    @Test func aBackendFailingMidAnswerClosesTheClientInsteadOfRetrying() {
        var state = Self.forwarding()
        state.picked(0)
        state.responseStarted(untilClose: false, requestComplete: true, retiring: false, now: 1)
        #expect(state.backendFailed(0, reused: false) == .close)
        #expect(state.backendUnusable(status: 502, reason: "Bad Gateway", message: "not HTTP") == .close)
    }

    @Test func afterItsLastAnswerTheConnectionLingersOnceThenCloses() {
        var state = ExchangeState(timeouts: Self.timeouts, now: 0)
        #expect(state.answerWritten() == nil, "nothing to linger on while requests may come")
        state.refused(now: 5 * Self.second)
        #expect(state.phase == .closing)
        #expect(state.answerWritten() == .shutdownWriting)
        #expect(state.answerWritten() == nil, "the writing side is shut once")
        #expect(state.expired(now: 14 * Self.second, retiring: false, hasRequestBytes: false) == nil)
        #expect(state.expired(now: 16 * Self.second, retiring: false, hasRequestBytes: false) == .close)
    }

    @Test func keepAliveGoesOnUnlessTheAnswerRunsUntilCloseTheClientLeftOrTheSwitchRetires() {
        var kept = Self.forwarding()
        kept.responseStarted(untilClose: false, requestComplete: true, retiring: false, now: 1)
        kept.responseFinished(clientEnded: false, now: 2 * Self.second)
        #expect(kept.phase == .awaitingRequest)
        #expect(kept.deadline == 62 * Self.second, "the client has its idle timeout for the next request")

        for (untilClose, requestComplete, retiring, clientEnded) in [
            (true, true, false, false), (false, false, false, false), (false, true, true, false),
            (false, true, false, true),
        ] {
            var state = Self.forwarding()
            state.responseStarted(
                untilClose: untilClose,
                requestComplete: requestComplete,
                retiring: retiring,
                now: 1
            )
            state.responseFinished(clientEnded: clientEnded, now: 2)
            #expect(state.phase == .closing)
        }
    }

    @Test func aRetiringSwitchClosesConnectionsBetweenRequestsButNotOnesMidRequest() {
        let idle = ExchangeState(timeouts: Self.timeouts, now: 0)
        #expect(idle.expired(now: 1, retiring: true, hasRequestBytes: false) == .close)
        #expect(idle.expired(now: 1, retiring: true, hasRequestBytes: true) == nil)
        #expect(Self.forwarding().expired(now: 1, retiring: true, hasRequestBytes: false) == nil)
    }

    @Test func aHeadSentAByteAtATimeAfterAnIdleWaitIsBoundedFromItsFirstByte() {
        var state = Self.forwarding()
        state.responseFinished(clientEnded: false, now: 0)
        #expect(state.expired(now: 59 * Self.second, retiring: false, hasRequestBytes: false) == nil, "idle: 60 s")
        state.clientBytesArrived(now: 50 * Self.second)
        for tick in 51...59 { state.clientBytesArrived(now: UInt64(tick) * Self.second) }  // more bytes move nothing
        #expect(
            state.expired(now: 60 * Self.second + 1, retiring: false, hasRequestBytes: true)
                == .refuse(status: 408, reason: "Request Timeout", message: "the request head did not arrive in time")
        )
    }

    @Test func aStalledRequestBodyGets408AndOneThatKeepsComingDoesNot() {
        var state = ExchangeState(timeouts: Self.timeouts, now: 0)
        state.requestStarted(repeatable: false, keepAlive: true, bodyFollows: true, now: 0)
        state.clientBytesArrived(now: 15 * Self.second)
        #expect(state.expired(now: 34 * Self.second, retiring: false, hasRequestBytes: false) == nil)
        #expect(
            state.expired(now: 35 * Self.second + 1, retiring: false, hasRequestBytes: false)
                == .refuse(status: 408, reason: "Request Timeout", message: "the request body stalled for 20 s")
        )
        state.requestBodyEnded(now: 34 * Self.second)
        #expect(
            state.expired(now: 63 * Self.second, retiring: false, hasRequestBytes: false) == nil,
            "the backend's 30 s start when the body ends"
        )
        #expect(
            state.expired(now: 64 * Self.second + 1, retiring: false, hasRequestBytes: false)?.isRefusal(504) == true
        )
    }
}

extension ExchangeState.Action {
    func isRefusal(_ status: Int) -> Bool {
        if case .refuse(status, _, _) = self { true } else { false }
    }
}
