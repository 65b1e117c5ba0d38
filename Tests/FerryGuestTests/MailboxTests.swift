import FerryTestSupport
import Foundation
import Testing

@testable import FerryGuest

/// The host's side of a guest's mailbox, as a node's calls use it.
@Suite struct MailboxTests {
    /// A call that gave up must not leave its answer for the next call: the guest answers in
    /// order, so the answer after a timeout belongs to the call that timed out.
    @Test func aLateAnswerToAWaitThatTimedOutIsNotTakenByTheNextWait() async {
        let mailbox = GuestMailbox()
        #expect(await mailbox.nextSent(timeout: .milliseconds(10)) == .timedOut)
        mailbox.sentByGuest(Array("late".utf8))
        mailbox.sentByGuest(Array("second".utf8))
        #expect(await mailbox.nextSent(timeout: .seconds(30)) == .message(Array("second".utf8)))
    }

    /// A strong move carries the mailbox: the message the guest has not taken goes with it, and
    /// the answer it still owes to a call that gave up at the source is dropped at the target too
    /// rather than taken by the target's first call.
    @Test func aMovedMailboxTakesItsMessagesAndTheAnswersItOwes() async throws {
        let source = GuestMailbox()
        #expect(await source.nextSent(timeout: .milliseconds(10)) == .timedOut)
        source.post(Array("question".utf8))
        let carried = source.carried()
        #expect(
            carried == GuestMailbox.Carried(inbox: [Array("question".utf8)], unclaimed: [], owed: [.dropped], kept: [:])
        )
        let wire = try JSONDecoder().decode(GuestMailbox.Carried.self, from: JSONEncoder().encode(carried))

        let target = GuestMailbox()
        target.restore(wire)
        #expect(target.nextForGuest(capacity: 64).message == Array("question".utf8))
        target.sentByGuest(Array("late".utf8))
        target.sentByGuest(Array("answer".utf8))
        #expect(await target.nextSent(timeout: .seconds(30)) == .message(Array("answer".utf8)))
    }

    /// A call still waiting when its process moves stays behind, and is answered all the same:
    /// its answer is kept at the target under the call's ticket, not given to the target's own
    /// next call, and the waiting call learns the ticket once the process has left.
    @Test func aCallWaitingAtTheMoveFetchesItsAnswerFromTheTarget() async throws {
        let source = GuestMailbox()
        let waiting = Task { await source.nextSent(timeout: .seconds(30)) }
        let carried = try await self.carriedWithAWaiter(source)
        guard case .kept(let ticket) = carried.owed.first, carried.owed.count == 1 else {
            Issue.record("the waiting call's answer is owed, kept: \(carried.owed)")
            return
        }
        let target = GuestMailbox()
        target.restore(try JSONDecoder().decode(GuestMailbox.Carried.self, from: JSONEncoder().encode(carried)))
        source.departed()
        #expect(await waiting.value == .departed(ticket: ticket))

        let fetch = Task { await target.keptAnswer(ticket, timeout: .seconds(30)) }
        let next = Task { await target.nextSent(timeout: .seconds(30)) }
        target.sentByGuest(Array("answer".utf8))
        target.sentByGuest(Array("next".utf8))
        #expect(await fetch.value == .message(Array("answer".utf8)))
        #expect(await next.value == .message(Array("next".utf8)))
        #expect(await target.keptAnswer(ticket, timeout: .seconds(1)) == .notOwed, "taken once")
    }

    /// A fetch waiting where the process leaves is told so (its caller asks the next node), and
    /// an answer that came before its call fetched it moves on with the process.
    @Test func aFetchFollowsTheProcessAndAKeptAnswerMovesOn() async throws {
        let source = GuestMailbox()
        _ = Task { await source.nextSent(timeout: .seconds(30)) }
        let carried = try await self.carriedWithAWaiter(source)
        guard case .kept(let ticket) = carried.owed.first else {
            Issue.record("no ticket: \(carried.owed)")
            return
        }
        let second = GuestMailbox()
        second.restore(carried)
        let fetch = Task { await second.keptAnswer(ticket, timeout: .seconds(30)) }
        let third = GuestMailbox()
        third.restore(second.carried())
        second.departed()
        #expect(await fetch.value == .departed(ticket: ticket))

        third.sentByGuest(Array("answer".utf8))
        let fourth = GuestMailbox()
        fourth.restore(third.carried())
        third.departed()
        #expect(await fourth.keptAnswer(ticket, timeout: .seconds(1)) == .message(Array("answer".utf8)))
    }

    /// What `source` carries once a call waits there.
    private func carriedWithAWaiter(_ source: GuestMailbox) async throws -> GuestMailbox.Carried {
        #expect(await eventually { !source.carried().owed.isEmpty })
        return source.carried()
    }
}
