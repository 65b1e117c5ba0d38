import FerryHTTP
import FerryPosix
import Testing

@Suite struct ClientDeadlineTests {
    let timeouts = ClientTimeouts(header: .seconds(10), body: .seconds(30), idle: .seconds(60))
    let second: UInt64 = 1_000_000_000

    @Test func aHeadSentOneByteAtATimeRunsOutTenSecondsAfterItsFirstByte() {
        var deadline = ClientDeadline(timeouts: self.timeouts, now: 0)
        #expect(deadline.wait == .head, "a new connection owes its first head")
        for tick in 1...9 {  // a byte a second never moves the deadline
            deadline.requestBytesArrived(now: UInt64(tick) * self.second)
            #expect(deadline.expired(now: UInt64(tick) * self.second) == nil)
        }
        #expect(deadline.expired(now: 10 * self.second + 1) == .head)
        #expect(deadline.reason(.head) == "the request head did not arrive within 10 s")
    }

    @Test func anIdleConnectionHasItsIdleTimeoutAndItsNextHeadTheHeaderTimeout() {
        var deadline = ClientDeadline(timeouts: self.timeouts, now: 0)
        deadline.headRead(bodyFollows: false, now: self.second)
        #expect(deadline.expired(now: 1000 * self.second) == nil, "no clock runs while the server answers")
        deadline.answered(now: 100 * self.second)
        #expect(deadline.wait == .idle)
        #expect(deadline.expired(now: 159 * self.second) == nil)
        #expect(deadline.expired(now: 160 * self.second + 1) == .idle)
        deadline.requestBytesArrived(now: 150 * self.second)
        #expect(deadline.wait == .head)
        #expect(deadline.expired(now: 160 * self.second + 1) == .head, "the head is due 10 s after its first byte")
    }

    @Test func aBodyMayPauseUpToTheBodyTimeoutBetweenReads() {
        var deadline = ClientDeadline(timeouts: self.timeouts, now: 0)
        deadline.headRead(bodyFollows: true, now: 0)
        deadline.requestBytesArrived(now: 25 * self.second)
        #expect(deadline.expired(now: 50 * self.second) == nil, "each read restarts the body's wait")
        #expect(deadline.expired(now: 55 * self.second + 1) == .body)
        deadline.requestRead()
        #expect(deadline.expired(now: 1000 * self.second) == nil)
    }

    @Test func anAnswerTheClientTakesNothingOfRunsOutAtTheIdleTimeoutWithoutA408() {
        var deadline = ClientDeadline(timeouts: self.timeouts, now: 0)
        deadline.requestBytesArrived(now: 0)
        deadline.headRead(bodyFollows: false, now: 0)
        deadline.sendStalled(now: 10 * self.second)
        deadline.requestBytesArrived(now: 20 * self.second)  // a pipelined head waits its turn
        #expect(deadline.expired(now: 69 * self.second) == nil)
        deadline.sendResumed()
        deadline.sendStalled(now: 60 * self.second)  // the client took some: the clock starts again
        #expect(deadline.expired(now: 119 * self.second) == nil)
        #expect(deadline.expired(now: 120 * self.second + 1) == .send)
        #expect(!deadline.answers408(.send), "mid-answer there is no room for a 408")
        #expect(deadline.reason(.send) == "the client took no data for 60 s")
        deadline.answered(now: 130 * self.second)
        deadline.sendStalled(now: 130 * self.second)
        #expect(deadline.wait == .idle, "only an answer under way stalls")
    }

    @Test func flagsTakePositiveSecondsAndRefuseTheRest() throws {
        #expect(try ClientTimeouts.seconds(2.5, flag: "--header-timeout") == .milliseconds(2500))
        for bad in [0, -1, .infinity, .nan, 100_000] {
            #expect(throws: ClientTimeoutsError.self) { try ClientTimeouts.seconds(bad, flag: "--header-timeout") }
        }
    }

    @Test func aSourceIsCappedAndItsFirstRefusalIsMarked() {
        let limit = SourceLimit(maximum: 2)
        let a: [UInt8] = [127, 0, 0, 2]
        let b: [UInt8] = [127, 0, 0, 3]
        #expect(limit.admit(a) == .admitted)
        #expect(limit.admit(a) == .admitted)
        #expect(limit.admit(a) == .refused(first: true))
        #expect(limit.admit(a) == .refused(first: false), "a flood is logged once")
        #expect(limit.admit(b) == .admitted, "another address has its own count")
        limit.release(a)
        #expect(limit.count(of: a) == 1)
        #expect(limit.admit(a) == .admitted)
        #expect(limit.admit(a) == .refused(first: true), "below the cap and back: logged again")
        #expect(SourceLimit(maximum: 0).admit(a) == .admitted, "0 is no cap")
    }
}
