import Testing

@testable import FerryCDN

@Suite struct CacheControlTests {
    @Test func directivesAreCaseInsensitiveAndCombinedAcrossFieldLines() {
        let control = CacheControl(headers: [
            ("cache-control", "Public, MAX-AGE=60"),
            ("Content-Type", "text/plain"),
            ("CACHE-CONTROL", "s-maxage=30 ,  Stale-While-Revalidate=10,stale-if-error=600"),
        ])
        #expect(control.isPublic)
        #expect(control.maxAge == 60)
        #expect(control.sMaxAge == 30)
        #expect(control.staleWhileRevalidate == 10)
        #expect(control.staleIfError == 600)
        #expect(!control.noStore && !control.noCache && !control.isPrivate)
    }

    @Test func flagsAreRecognised() {
        let control = CacheControl(values: [
            "no-store, no-cache, must-revalidate, proxy-revalidate, immutable, private, x-unknown=1"
        ])
        #expect(control.noStore && control.noCache && control.mustRevalidate)
        #expect(control.proxyRevalidate && control.immutable && control.isPrivate)
        #expect(!control.isPublic)
        #expect(control.maxAge == nil)
    }

    @Test func commasInsideQuotedArgumentsDoNotSplitDirectives() {
        let control = CacheControl(values: [#"no-cache="Set-Cookie, max-age=5", max-age=100"#])
        #expect(control.noCache)
        #expect(control.maxAge == 100)
    }

    @Test func quotedNumbersAreAccepted() {
        #expect(CacheControl(values: [#"max-age="60""#]).maxAge == 60)
    }

    @Test func privateWithFieldNamesIsWholeResponsePrivate() {
        #expect(CacheControl(values: [#"private="Set-Cookie, Authorization", max-age=60"#]).isPrivate)
    }

    @Test(arguments: ["max-age=abc", "max-age=-5", "max-age", "max-age=1.5", "max-age=", "max-age=6 0"])
    func invalidMaxAgeCountsAsZeroSoTheResponseIsStale(directive: String) {
        #expect(CacheControl(values: [directive]).maxAge == 0)
    }

    @Test func unterminatedQuotedArgumentIsInvalid() {
        #expect(CacheControl(values: [#"max-age="60"#]).maxAge == 0)
        #expect(CacheControl(values: [#"s-maxage="60"#]).sMaxAge == 0)
    }

    @Test func invalidStaleExtensionsAreIgnored() {
        let control = CacheControl(values: ["stale-while-revalidate=soon, stale-if-error"])
        #expect(control.staleWhileRevalidate == nil)
        #expect(control.staleIfError == nil)
    }

    @Test func duplicatesKeepTheMostRestrictiveValue() {
        let control = CacheControl(values: ["max-age=60, s-maxage=100", "max-age=30, s-maxage=200, max-age=45"])
        #expect(control.maxAge == 30)
        #expect(control.sMaxAge == 100)
        #expect(CacheControl(values: ["max-age=60, max-age=bogus"]).maxAge == 0)
    }

    @Test func hugeValuesAreClampedToTwoToTheThirtyFirst() {
        #expect(CacheControl(values: ["max-age=99999999999999999999999"]).maxAge == 2_147_483_648)
    }

    @Test func noFieldMeansNoDirectives() {
        #expect(CacheControl(headers: [("Expires", "0")]) == CacheControl())
    }
}
