import Testing

@testable import FerryCDN

@Suite struct CacheDecisionTests {
    @Test func aFreshObjectIsServed() {
        #expect(makeObject(cacheControl: "max-age=100").decision(now: t0 + 99) == .fresh)
    }

    @Test func aStaleObjectWithoutExtensionsMustBeRevalidated() {
        #expect(makeObject(cacheControl: "max-age=100").decision(now: t0 + 100) == .mustRevalidate)
    }

    @Test func staleWhileRevalidateWindowIncludesItsBounds() {
        let object = makeObject(cacheControl: "max-age=100, stale-while-revalidate=30")
        #expect(object.decision(now: t0 + 99.9) == .fresh)
        #expect(object.decision(now: t0 + 100) == .staleWhileRevalidate)
        #expect(object.decision(now: t0 + 115) == .staleWhileRevalidate)
        #expect(object.decision(now: t0 + 130) == .staleWhileRevalidate)
        #expect(object.decision(now: t0 + 130.5) == .mustRevalidate)
    }

    @Test func staleWhileRevalidateCountsTheAgeHeader() {
        let object = makeObject([
            ("Date", httpDate(t0)), ("Age", "120"), ("Cache-Control", "max-age=100, stale-while-revalidate=30"),
        ])
        #expect(object.decision(now: t0) == .staleWhileRevalidate)
        #expect(object.decision(now: t0 + 11) == .mustRevalidate)
    }

    @Test(arguments: [
        "max-age=100, stale-while-revalidate=30, must-revalidate",
        "max-age=100, stale-while-revalidate=30, proxy-revalidate",
        "s-maxage=100, stale-while-revalidate=30",
    ])
    func revalidationDirectivesForbidServingStale(cacheControl: String) {
        let object = makeObject(cacheControl: cacheControl + ", stale-if-error=600")
        #expect(object.decision(now: t0 + 50) == .fresh)
        #expect(object.decision(now: t0 + 101) == .mustRevalidate)
        #expect(!object.mayServeOnOriginFailure(now: t0 + 101))
        #expect(object.mayServeOnOriginFailure(now: t0 + 50))
    }

    @Test func noCacheForcesRevalidationEvenWhenFresh() {
        let object = makeObject(cacheControl: "max-age=600, no-cache, stale-while-revalidate=60, stale-if-error=60")
        #expect(object.isFresh(now: t0 + 1))
        #expect(object.decision(now: t0 + 1) == .mustRevalidate)
        #expect(!object.mayServeOnOriginFailure(now: t0 + 1))
    }

    @Test func staleIfErrorWindowIncludesItsBounds() {
        let object = makeObject(cacheControl: "max-age=10, stale-if-error=60")
        #expect(object.mayServeOnOriginFailure(now: t0 + 5))
        #expect(object.mayServeOnOriginFailure(now: t0 + 10))
        #expect(object.mayServeOnOriginFailure(now: t0 + 70))
        #expect(!object.mayServeOnOriginFailure(now: t0 + 70.5))
        // stale-if-error does not allow serving stale when the origin is merely asked.
        #expect(object.decision(now: t0 + 20) == .mustRevalidate)
    }

    @Test func withoutStaleIfErrorOnlyAFreshObjectSurvivesAnOriginFailure() {
        let object = makeObject(cacheControl: "max-age=10, stale-while-revalidate=60")
        #expect(object.mayServeOnOriginFailure(now: t0 + 9))
        #expect(!object.mayServeOnOriginFailure(now: t0 + 11))
    }
}
