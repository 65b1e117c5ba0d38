/// Whether a shared cache may store a response (RFC 9111 §3, §3.5), with the reason when not, for
/// logs and tests.
///
/// Stricter than the RFC in three places, as Varnish's built-in rules are:
/// - A response with `Set-Cookie` is not stored: serving one user's cookie to everyone is the classic
///   CDN leak, and origins rarely mark such responses `private`.
/// - A 206 is not stored: this cache keeps whole representations and answers ranges from them.
/// - Only status codes this cache understands (the registered final codes, see `understood`) are stored.
public enum Storability: Sendable, Equatable {
    case store
    case refuse(reason: String)

    /// The verdict for the response to a `method` request with `requestHeaders`.
    public static func evaluate(
        method: String,
        requestHeaders: [(name: String, value: String)],
        status: Int,
        responseHeaders: [(name: String, value: String)]
    ) -> Storability {
        // HEAD is answered from a stored GET by the edge; other methods are not cacheable here.
        guard method == "GET" else { return .refuse(reason: "method \(method) is not GET") }
        guard status >= 200 else { return .refuse(reason: "status \(status) is not final") }
        guard status != 206 else { return .refuse(reason: "partial content (206) is not stored") }
        guard status != 304 else { return .refuse(reason: "a 304 only updates a stored response") }
        guard understood.contains(status) else { return .refuse(reason: "status \(status) is not understood") }
        if CacheControl(headers: requestHeaders).noStore {
            return .refuse(reason: "the request says no-store")
        }
        let cacheControl = CacheControl(headers: responseHeaders)
        if cacheControl.noStore { return .refuse(reason: "the response says no-store") }
        if cacheControl.isPrivate { return .refuse(reason: "the response is private") }
        if HeaderFields.contains("authorization", in: requestHeaders),
            !(cacheControl.isPublic || cacheControl.sMaxAge != nil || cacheControl.mustRevalidate)
        {
            return .refuse(reason: "an authorized request's response is not marked public, s-maxage or must-revalidate")
        }
        if VaryKey.fields(ofVary: responseHeaders).contains("*") { return .refuse(reason: "the response has Vary: *") }
        if HeaderFields.contains("set-cookie", in: responseHeaders) {
            return .refuse(reason: "the response sets a cookie")
        }
        if Freshness.hasExplicitLifetime(cacheControl: cacheControl, headers: responseHeaders) { return .store }
        guard Freshness.isHeuristicallyCacheable(status: status) else {
            return .refuse(reason: "status \(status) has no explicit lifetime and is not heuristically cacheable")
        }
        guard HeaderFields.first("last-modified", in: responseHeaders).flatMap(HTTPDateParsing.parse) != nil else {
            return .refuse(reason: "no explicit lifetime and no valid Last-Modified for a heuristic one")
        }
        return .store
    }

    /// RFC 9110's final status codes and the later 428, 429, 431 and 451 (206 and 304 are refused first).
    static let understood: Set<Int> = [
        200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407,
        408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 428, 429, 431, 451, 500, 501, 502, 503,
        504, 505,
    ]
}
