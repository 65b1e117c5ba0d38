@testable import FerryCDN

/// 2023-11-14 22:13:20 GMT, a whole second so HTTP-dates round-trip exactly.
let t0: Double = 1_700_000_000

func httpDate(_ seconds: Double) -> String {
    HTTPDateParsing.format(seconds)
}

/// A stored 200 (by default) received at `responseTime` for a request sent at `requestTime`.
func makeObject(
    _ headers: [(name: String, value: String)],
    status: Int = 200,
    body: [UInt8] = Array("hello".utf8),
    request: [(name: String, value: String)] = [],
    requestTime: Double = t0,
    responseTime: Double = t0
) -> CachedObject {
    CachedObject(
        status: status,
        headers: headers,
        body: body,
        requestHeaders: request,
        requestTime: requestTime,
        responseTime: responseTime
    )
}

/// A response with a `Date` of `t0` and the given `Cache-Control`.
func makeObject(cacheControl: String, body: [UInt8] = Array("hello".utf8)) -> CachedObject {
    makeObject([("Date", httpDate(t0)), ("Cache-Control", cacheControl)], body: body)
}
