import NIOCore
import Testing

@testable import FerryCDN

@Suite struct RevalidationTests {
    let stored = makeObject(
        [
            ("Date", httpDate(t0)), ("Cache-Control", "max-age=60"), ("ETag", #""v1""#),
            ("Last-Modified", httpDate(t0 - 3600)), ("Content-Type", "text/plain"), ("X-Origin", "a"),
        ],
        body: Array("stored body".utf8)
    )

    func value(_ name: String, in object: CachedObject) -> [String] {
        object.headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    @Test func conditionalHeadersCarryTheValidators() {
        let headers = self.stored.conditionalHeaders
        #expect(headers.map(\.name) == ["If-None-Match", "If-Modified-Since"])
        #expect(headers.map(\.value) == [#""v1""#, httpDate(t0 - 3600)])
    }

    @Test func noValidatorsMeansNoConditionalHeaders() {
        #expect(makeObject(cacheControl: "max-age=60").conditionalHeaders.isEmpty)
        let etagOnly = makeObject([("ETag", #"W/"x""#)])
        #expect(etagOnly.conditionalHeaders.map(\.name) == ["If-None-Match"])
    }

    @Test func notModifiedRefreshUpdatesFieldsAndKeepsTheBody() {
        let later = t0 + 600
        #expect(!self.stored.isFresh(now: later))
        let refreshed = self.stored.refreshed(
            with: [
                ("Date", httpDate(later)), ("ETag", #"W/"v1""#), ("cache-control", "max-age=300"),
                ("Content-Length", "0"), ("Set-Cookie", "a=b"), ("Connection", "close"),
            ],
            requestTime: later - 1,
            responseTime: later
        )
        #expect(refreshed.body == ByteBuffer(string: "stored body"))
        #expect(refreshed.status == 200)
        #expect(self.value("ETag", in: refreshed) == [#"W/"v1""#])
        #expect(refreshed.etag == #"W/"v1""#)
        #expect(self.value("Cache-Control", in: refreshed) == ["max-age=300"])
        #expect(self.value("Date", in: refreshed) == [httpDate(later)])
        #expect(self.value("Content-Length", in: refreshed) == ["11"])
        #expect(self.value("Content-Type", in: refreshed) == ["text/plain"])
        #expect(self.value("X-Origin", in: refreshed) == ["a"])
        #expect(self.value("Set-Cookie", in: refreshed).isEmpty)
        #expect(self.value("Connection", in: refreshed).isEmpty)
        #expect(refreshed.freshnessLifetime == 300)
        #expect(refreshed.age(now: later) == 1)
        #expect(refreshed.decision(now: later + 298) == .fresh)
        #expect(refreshed.decision(now: later + 300) == .mustRevalidate)
        #expect(refreshed.varyKey == self.stored.varyKey)
    }

    @Test func refreshWithoutDateCountsFromTheRevalidation() {
        let later = t0 + 600
        let refreshed = self.stored.refreshed(with: [("ETag", #""v1""#)], requestTime: later, responseTime: later)
        #expect(refreshed.age(now: later) == 0)
        #expect(refreshed.responseTime == later)
    }

    @Test func validationChecksTheNotModifiedValidators() {
        #expect(self.stored.isValidated(by: [("ETag", #""v1""#)]))
        #expect(self.stored.isValidated(by: [("ETag", #"W/"v1""#)]))
        #expect(!self.stored.isValidated(by: [("ETag", #""v2""#)]))
        #expect(self.stored.isValidated(by: [("Last-Modified", httpDate(t0 - 3600))]))
        #expect(!self.stored.isValidated(by: [("Last-Modified", httpDate(t0))]))
        #expect(self.stored.isValidated(by: [("Date", httpDate(t0))]))
        #expect(!makeObject(cacheControl: "max-age=1").isValidated(by: [("ETag", #""v1""#)]))
    }
}
