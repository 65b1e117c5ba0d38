import Testing

@testable import FerryCDN

@Suite struct StorabilityTests {
    func verdict(
        method: String = "GET",
        request: [(name: String, value: String)] = [],
        status: Int = 200,
        _ response: [(name: String, value: String)]
    ) -> Storability {
        Storability.evaluate(method: method, requestHeaders: request, status: status, responseHeaders: response)
    }

    func isRefused(_ storability: Storability) -> Bool {
        if case .refuse = storability { return true }
        return false
    }

    @Test func explicitLifetimeIsStored() {
        #expect(self.verdict([("Cache-Control", "max-age=60")]) == .store)
        #expect(self.verdict([("cache-control", "s-maxage=0")]) == .store)
        #expect(self.verdict([("Expires", httpDate(t0))]) == .store)
    }

    @Test func invalidExpiresIsStillExplicitAndStoredAsStale() {
        #expect(self.verdict([("Expires", "0")]) == .store)
    }

    @Test func onlyGetIsStored() {
        for method in ["HEAD", "POST", "PUT", "get"] {
            #expect(self.isRefused(self.verdict(method: method, [("Cache-Control", "max-age=60")])))
        }
    }

    @Test func noStoreIsRefused() {
        #expect(
            self.verdict([("Cache-Control", "max-age=60, no-store")]) == .refuse(reason: "the response says no-store")
        )
        #expect(
            self.verdict(request: [("Cache-Control", "no-store")], [("Cache-Control", "max-age=60")])
                == .refuse(reason: "the request says no-store")
        )
    }

    @Test func privateIsRefusedEvenWithPublicOrFieldNames() {
        #expect(
            self.verdict([("Cache-Control", "public, private, max-age=60")])
                == .refuse(reason: "the response is private")
        )
        #expect(self.isRefused(self.verdict([("Cache-Control", #"private="Set-Cookie", max-age=60"#)])))
    }

    @Test func setCookieIsRefusedAsVarnishDoes() {
        let response = [("Cache-Control", "public, max-age=60"), ("Set-Cookie", "session=abc")]
        #expect(self.verdict(response) == .refuse(reason: "the response sets a cookie"))
    }

    @Test func varyStarIsRefused() {
        #expect(
            self.verdict([("Cache-Control", "max-age=60"), ("Vary", "Accept, *")])
                == .refuse(reason: "the response has Vary: *")
        )
        #expect(self.verdict([("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")]) == .store)
    }

    @Test func authorizedRequestsNeedPublicSMaxAgeOrMustRevalidate() {
        let request = [("Authorization", "Bearer x")]
        #expect(self.isRefused(self.verdict(request: request, [("Cache-Control", "max-age=60")])))
        #expect(self.isRefused(self.verdict(request: request, [("Expires", httpDate(t0 + 60))])))
        #expect(self.verdict(request: request, [("Cache-Control", "public, max-age=60")]) == .store)
        #expect(self.verdict(request: request, [("Cache-Control", "s-maxage=60")]) == .store)
        #expect(self.verdict(request: request, [("Cache-Control", "max-age=60, must-revalidate")]) == .store)
    }

    @Test func partialNotModifiedAndInformationalResponsesAreRefused() {
        for status in [100, 103, 206, 304] {
            #expect(self.isRefused(self.verdict(status: status, [("Cache-Control", "max-age=60")])))
        }
    }

    @Test func unknownStatusCodesAreRefused() {
        #expect(
            self.verdict(status: 299, [("Cache-Control", "max-age=60")])
                == .refuse(reason: "status 299 is not understood")
        )
        #expect(self.verdict(status: 503, [("Cache-Control", "max-age=5")]) == .store)
    }

    @Test func heuristicStorageNeedsLastModifiedAndACacheableStatus() {
        let lastModified = [("Last-Modified", httpDate(t0 - 3600))]
        #expect(self.verdict(lastModified) == .store)
        #expect(self.verdict(status: 404, lastModified) == .store)
        #expect(self.isRefused(self.verdict([("Content-Type", "text/html")])))
        #expect(self.isRefused(self.verdict([("Last-Modified", "last tuesday")])))
        #expect(self.isRefused(self.verdict(status: 302, lastModified)))
        #expect(self.isRefused(self.verdict(status: 500, lastModified)))
    }
}
