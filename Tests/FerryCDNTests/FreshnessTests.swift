import Testing

@testable import FerryCDN

@Suite struct FreshnessTests {
    @Test func sMaxAgeTakesPrecedenceOverMaxAgeAndExpires() {
        let object = makeObject([
            ("Date", httpDate(t0)), ("Expires", httpDate(t0 + 3600)), ("Cache-Control", "max-age=600, s-maxage=60"),
        ])
        #expect(object.freshnessLifetime == 60)
        #expect(object.isFresh(now: t0 + 59))
        #expect(!object.isFresh(now: t0 + 60))
    }

    @Test func maxAgeTakesPrecedenceOverExpires() {
        let object = makeObject([
            ("Date", httpDate(t0)), ("Expires", httpDate(t0 + 3600)), ("Cache-Control", "max-age=600"),
        ])
        #expect(object.freshnessLifetime == 600)
    }

    @Test func expiresCountsFromTheDateHeaderNotTheResponseTime() {
        let object = makeObject(
            [("Date", httpDate(t0)), ("Expires", httpDate(t0 + 300))],
            requestTime: t0 + 8,
            responseTime: t0 + 10
        )
        #expect(object.freshnessLifetime == 300)
        // Apparent age: the response arrived 10 s after its Date.
        #expect(object.age(now: t0 + 10) == 10)
        #expect(object.isFresh(now: t0 + 299))
        #expect(!object.isFresh(now: t0 + 300))
    }

    @Test func expiresWithoutDateCountsFromTheResponseTime() {
        let object = makeObject([("Expires", httpDate(t0 + 300))], responseTime: t0 + 100)
        #expect(object.freshnessLifetime == 200)
        #expect(object.headers.contains { $0.name == "Date" && $0.value == httpDate(t0 + 100) })
    }

    @Test(arguments: ["0", "-1", "never", "Sun, 31 Nov 1994 08:49:37 GMT"])
    func invalidExpiresMeansAlreadyStale(expires: String) {
        let object = makeObject([("Date", httpDate(t0)), ("Expires", expires)])
        #expect(object.freshnessLifetime == 0)
        #expect(!object.isFresh(now: t0))
        #expect(object.decision(now: t0) == .mustRevalidate)
    }

    @Test func expiresBeforeDateGivesZeroNotNegative() {
        let object = makeObject([("Date", httpDate(t0)), ("Expires", httpDate(t0 - 60))])
        #expect(object.freshnessLifetime == 0)
    }

    @Test func heuristicIsATenthOfTheTimeSinceLastModified() {
        let object = makeObject([("Date", httpDate(t0)), ("Last-Modified", httpDate(t0 - 3600))])
        #expect(object.freshnessLifetime == 360)
    }

    @Test func heuristicIsCappedAtOneDay() {
        let object = makeObject([("Date", httpDate(t0)), ("Last-Modified", httpDate(t0 - 100 * 86_400))])
        #expect(object.freshnessLifetime == 86_400)
    }

    @Test func noHeuristicWithoutLastModified() {
        #expect(makeObject([("Date", httpDate(t0))]).freshnessLifetime == 0)
        #expect(makeObject([("Date", httpDate(t0)), ("Last-Modified", "yesterday")]).freshnessLifetime == 0)
    }

    @Test(arguments: [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])
    func heuristicAppliesToHeuristicallyCacheableStatuses(status: Int) {
        let object = makeObject([("Date", httpDate(t0)), ("Last-Modified", httpDate(t0 - 1000))], status: status)
        #expect(object.freshnessLifetime == 100)
    }

    @Test(arguments: [201, 302, 303, 307, 400, 403, 500, 503])
    func heuristicDoesNotApplyToOtherStatuses(status: Int) {
        let object = makeObject([("Date", httpDate(t0)), ("Last-Modified", httpDate(t0 - 1000))], status: status)
        #expect(object.freshnessLifetime == 0)
    }

    @Test func explicitLifetimeWinsOverHeuristic() {
        let object = makeObject([
            ("Date", httpDate(t0)), ("Last-Modified", httpDate(t0 - 100_000)), ("Cache-Control", "max-age=5"),
        ])
        #expect(object.freshnessLifetime == 5)
    }

    @Test func ageHeaderCountsTowardsTheAge() {
        let object = makeObject([("Date", httpDate(t0)), ("Age", "100"), ("Cache-Control", "max-age=120")])
        #expect(object.age(now: t0) == 100)
        #expect(object.isFresh(now: t0 + 19))
        #expect(!object.isFresh(now: t0 + 20))
        #expect(object.staleness(now: t0 + 50) == 30)
        #expect(!object.headers.contains { $0.name.lowercased() == "age" })
    }

    @Test func responseDelayIsAddedToTheAgeHeader() {
        let object = makeObject(
            [("Date", httpDate(t0)), ("Age", "10")],
            requestTime: t0,
            responseTime: t0 + 2
        )
        // max(apparent 2, 10 + delay 2) = 12 at arrival.
        #expect(object.age(now: t0 + 2) == 12)
        #expect(object.age(now: t0 + 32) == 42)
    }

    @Test func apparentAgeWinsWhenTheDateIsOlderThanTheAgeSays() {
        let object = makeObject([("Date", httpDate(t0 - 50)), ("Age", "5")])
        #expect(object.age(now: t0) == 50)
    }

    @Test func aDateInTheFutureDoesNotMakeTheAgeNegative() {
        let object = makeObject([("Date", httpDate(t0 + 500))])
        #expect(object.age(now: t0) == 0)
    }

    @Test func invalidAgeHeaderIsIgnored() {
        #expect(makeObject([("Date", httpDate(t0)), ("Age", "-3")]).age(now: t0 + 1) == 1)
    }

    @Test func servedHeadersCarryTheCurrentAgeInWholeSeconds() {
        let object = makeObject([("Date", httpDate(t0)), ("Age", "7")])
        let served = object.servedHeaders(now: t0 + 3.9)
        #expect(served.last?.name == "Age")
        #expect(served.last?.value == "10")
    }

    @Test func storedHeadersDropHopByHopFieldsAndSetContentLength() {
        let object = makeObject(
            [
                ("Date", httpDate(t0)), ("Connection", "close, X-Hop"), ("X-Hop", "1"), ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"), ("Content-Length", "999"), ("Content-Type", "text/plain"),
            ],
            body: Array("abc".utf8)
        )
        let names = object.headers.map(\.name)
        #expect(names == ["Date", "Content-Type", "Content-Length"])
        #expect(object.headers.last?.value == "3")
    }
}
