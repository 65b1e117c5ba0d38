/// Freshness lifetime and age (RFC 9111 §4.2) as a shared cache computes them. All times are seconds
/// since the Unix epoch, passed in by the caller so the rules are testable without a clock.
public enum Freshness {
    /// The share of the time since `Last-Modified` a heuristic lifetime may be (§4.2.2 suggests 10%).
    public static let heuristicFraction = 0.1
    /// The longest heuristic lifetime: a day, so a file untouched for years is still rechecked daily.
    public static let heuristicLimit: Double = 86_400

    /// Status codes that are heuristically cacheable (RFC 9110 §15.1).
    public static func isHeuristicallyCacheable(status: Int) -> Bool {
        switch status {
        case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501: true
        default: false
        }
    }

    /// Whether the response states its own lifetime (`s-maxage`, `max-age` or `Expires`, even an
    /// invalid one, which means "already expired").
    public static func hasExplicitLifetime(
        cacheControl: CacheControl,
        headers: [(name: String, value: String)]
    ) -> Bool {
        cacheControl.sMaxAge != nil || cacheControl.maxAge != nil || HeaderFields.contains("expires", in: headers)
    }

    /// The freshness lifetime for a shared cache (§4.2.1): `s-maxage`, else `max-age`, else
    /// `Expires` − `Date` (the response time when `Date` is missing or invalid; an invalid `Expires`
    /// gives 0), else the heuristic of §4.2.2, else 0.
    public static func lifetime(
        status: Int,
        headers: [(name: String, value: String)],
        cacheControl: CacheControl,
        responseTime: Double
    ) -> Double {
        if let sMaxAge = cacheControl.sMaxAge { return Double(sMaxAge) }
        if let maxAge = cacheControl.maxAge { return Double(maxAge) }
        let date = HeaderFields.first("date", in: headers).flatMap(HTTPDateParsing.parse) ?? responseTime
        if let expires = HeaderFields.first("expires", in: headers) {
            guard let expiry = HTTPDateParsing.parse(expires) else { return 0 }
            return max(0, expiry - date)
        }
        return heuristicLifetime(status: status, headers: headers, date: date)
    }

    /// 10% of the time between `Last-Modified` and `Date`, at most a day; 0 when the status is not
    /// heuristically cacheable or there is no valid `Last-Modified` to reckon from.
    static func heuristicLifetime(status: Int, headers: [(name: String, value: String)], date: Double) -> Double {
        guard isHeuristicallyCacheable(status: status),
            let lastModified = HeaderFields.first("last-modified", in: headers).flatMap(HTTPDateParsing.parse)
        else { return 0 }
        return min(max(0, date - lastModified) * heuristicFraction, heuristicLimit)
    }

    /// The age the response already had when it arrived (§4.2.3 `corrected_initial_age`): the larger
    /// of what its `Date` says and what its `Age` says plus the round trip, so a slow or lying
    /// upstream never makes a response look younger than it is.
    public static func correctedInitialAge(
        headers: [(name: String, value: String)],
        requestTime: Double,
        responseTime: Double
    ) -> Double {
        let date = HeaderFields.first("date", in: headers).flatMap(HTTPDateParsing.parse) ?? responseTime
        let ageValue = HeaderFields.first("age", in: headers).flatMap(HeaderFields.deltaSeconds) ?? 0
        let apparentAge = max(0, responseTime - date)
        let responseDelay = max(0, responseTime - requestTime)
        return max(apparentAge, Double(ageValue) + responseDelay)
    }

    /// §4.2.3 `current_age`: the initial age plus the time the response has been resident here.
    public static func currentAge(correctedInitialAge: Double, responseTime: Double, now: Double) -> Double {
        correctedInitialAge + max(0, now - responseTime)
    }
}
