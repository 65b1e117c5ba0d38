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
        #expect(await mailbox.nextSent(timeout: .milliseconds(10)) == nil)
        mailbox.sentByGuest(Array("late".utf8))
        mailbox.sentByGuest(Array("second".utf8))
        #expect(await mailbox.nextSent(timeout: .seconds(30)) == Array("second".utf8))
    }

    /// A strong move carries the mailbox: the message the guest has not taken goes with it, and
    /// the answer it still owes to a call that gave up at the source is dropped at the target too
    /// rather than taken by the target's first call.
    @Test func aMovedMailboxTakesItsMessagesAndTheAnswersItOwes() async throws {
        let source = GuestMailbox()
        #expect(await source.nextSent(timeout: .milliseconds(10)) == nil)
        source.post(Array("question".utf8))
        let carried = source.carried()
        #expect(carried == GuestMailbox.Carried(inbox: [Array("question".utf8)], unclaimed: [], owed: 1))
        let wire = try JSONDecoder().decode(GuestMailbox.Carried.self, from: JSONEncoder().encode(carried))

        let target = GuestMailbox()
        target.restore(wire)
        #expect(target.nextForGuest(capacity: 64).message == Array("question".utf8))
        target.sentByGuest(Array("late".utf8))
        target.sentByGuest(Array("answer".utf8))
        #expect(await target.nextSent(timeout: .seconds(30)) == Array("answer".utf8))
    }

    /// A call still waiting when its process moves stays behind: its answer is owed too.
    @Test func aCallWaitingAtTheMoveIsOwedItsAnswer() async {
        let mailbox = GuestMailbox()
        let waiting = Task { await mailbox.nextSent(timeout: .seconds(30)) }
        #expect(await eventually { mailbox.carried().owed == 1 })
        mailbox.sentByGuest(Array("answer".utf8))
        #expect(await waiting.value == Array("answer".utf8))
        #expect(mailbox.carried().owed == 0)
    }
}
