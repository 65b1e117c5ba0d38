import Testing

@testable import FerryCDN

@Suite struct VaryKeyTests {
    let varyEncoding = [("Vary", "Accept-Encoding")]

    func key(_ request: [(name: String, value: String)]) -> VaryKey {
        VaryKey(responseHeaders: self.varyEncoding, requestHeaders: request)
    }

    @Test func gzipAndBrotliAreDifferentVariants() {
        #expect(self.key([("Accept-Encoding", "gzip")]) != self.key([("Accept-Encoding", "br")]))
        #expect(self.key([("Accept-Encoding", "gzip")]) == self.key([("accept-encoding", "gzip")]))
    }

    @Test func aMissingHeaderDiffersFromAnEmptyOne() {
        let missing = self.key([])
        let empty = self.key([("Accept-Encoding", "")])
        #expect(missing != empty)
        #expect(missing.values == [nil])
        #expect(empty.values == [""])
        #expect(empty == self.key([("Accept-Encoding", "  ")]))
    }

    @Test(arguments: ["gzip,br", "gzip, br", " gzip ,   br ", "gzip,,br"])
    func listSpellingsNormaliseToOneVariant(value: String) {
        #expect(self.key([("Accept-Encoding", value)]) == self.key([("Accept-Encoding", "gzip, br")]))
    }

    @Test func multipleFieldLinesCombineIntoOneList() {
        let split = self.key([("Accept-Encoding", "gzip"), ("Accept-Encoding", "br")])
        #expect(split == self.key([("Accept-Encoding", "gzip, br")]))
        #expect(split != self.key([("Accept-Encoding", "br, gzip")]))
    }

    @Test func parametersAndInnerWhitespaceAreNormalised() {
        #expect(self.key([("Accept-Encoding", "gzip; q=0.5")]) == self.key([("Accept-Encoding", "gzip;q=0.5")]))
        #expect(self.key([("Accept-Encoding", "x  y")]) == self.key([("Accept-Encoding", "x y")]))
    }

    @Test func varyFieldNamesIgnoreCaseOrderAndRepetition() {
        let request = [("Accept-Language", "en"), ("Accept-Encoding", "gzip")]
        let first = VaryKey(responseHeaders: [("Vary", "Accept-Encoding, Accept-Language")], requestHeaders: request)
        let second = VaryKey(
            responseHeaders: [("vary", "accept-language"), ("VARY", "ACCEPT-ENCODING, accept-language")],
            requestHeaders: request
        )
        #expect(first == second)
        #expect(first.fields == ["accept-encoding", "accept-language"])
    }

    @Test func storedKeyMatchesOnlyEqualRequests() {
        let stored = self.key([("Accept-Encoding", "gzip")])
        #expect(stored.matches(requestHeaders: [("ACCEPT-ENCODING", " gzip ")]))
        #expect(!stored.matches(requestHeaders: [("Accept-Encoding", "br")]))
        #expect(!stored.matches(requestHeaders: []))
    }

    @Test func noVaryMatchesEveryRequestAndStarMatchesNone() {
        let plain = VaryKey(responseHeaders: [], requestHeaders: [("Accept-Encoding", "gzip")])
        #expect(plain == .none)
        #expect(plain.matches(requestHeaders: [("Accept-Encoding", "br")]))
        let star = VaryKey(responseHeaders: [("Vary", "*")], requestHeaders: [])
        #expect(star.isWildcard)
        #expect(!star.matches(requestHeaders: []))
    }

    @Test func descriptionTellsMissingFromEmpty() {
        #expect(self.key([]).description == "accept-encoding!\n")
        #expect(self.key([("Accept-Encoding", "")]).description == "accept-encoding=\n")
    }
}
