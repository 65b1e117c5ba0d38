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
}
