import NIOCore
import NIOHTTP1

/// One stored response: what the edge serves on a hit plus what it needs to judge freshness at any
/// `now` (RFC 9111 §4.2) without re-reading the headers.
///
/// The stored header fields are ready to serve: hop-by-hop fields (§3.1) and `Age` are dropped (the
/// edge sends the current age, see `servedHeaders(now:)`), `Content-Length` is set to the body's length
/// (the body is stored de-chunked) except on 204, and a missing `Date` is added from the response time
/// as RFC 9110 §6.6.1 asks of a recipient that caches.
public struct CachedObject: Sendable {
    public let status: Int
    public let headers: [(name: String, value: String)]
    /// The whole body, shared (not copied) by every answer that serves it.
    public let body: ByteBuffer
    /// `HTTP/1.1 STATUS REASON\r\n`, rendered once for every hit.
    public let statusLine: ByteBuffer
    /// The stored fields as `Name: value\r\n` lines, without `Content-Length` (a range has its own).
    public let renderedFields: ByteBuffer
    /// When the request that produced (or last revalidated) this response was sent.
    public let requestTime: Double
    /// When that response arrived.
    public let responseTime: Double
    /// §4.2.3 `corrected_initial_age`, kept because `Age` is not stored.
    public let correctedInitialAge: Double
    /// §4.2.1 freshness lifetime for a shared cache.
    public let freshnessLifetime: Double
    public let cacheControl: CacheControl
    /// The secondary key of the request this response answered.
    public let varyKey: VaryKey
    public let etag: String?
    public let lastModified: String?
    /// An estimate of the memory the head takes (field bytes plus per-field overhead), for the budget.
    public let headCost: Int

    /// Stores a response received at `responseTime` for a request sent at `requestTime`.
    public init(
        status: Int,
        headers: [(name: String, value: String)],
        body: [UInt8],
        requestHeaders: [(name: String, value: String)],
        requestTime: Double,
        responseTime: Double
    ) {
        self.init(
            status: status,
            headers: headers,
            body: ByteBuffer(bytes: body),
            requestHeaders: requestHeaders,
            requestTime: requestTime,
            responseTime: responseTime
        )
    }

    /// Stores a response received at `responseTime` for a request sent at `requestTime`.
    public init(
        status: Int,
        headers: [(name: String, value: String)],
        body: ByteBuffer,
        requestHeaders: [(name: String, value: String)],
        requestTime: Double,
        responseTime: Double
    ) {
        var stored = Self.storable(headers, status: status, bodyCount: body.readableBytes)
        if !HeaderFields.contains("date", in: stored) {
            stored.append((name: "Date", value: HTTPDateParsing.format(responseTime)))
        }
        self.init(
            status: status,
            storedHeaders: stored,
            body: body,
            varyKey: VaryKey(responseHeaders: headers, requestHeaders: requestHeaders),
            requestTime: requestTime,
            responseTime: responseTime,
            correctedInitialAge: Freshness.correctedInitialAge(
                headers: headers,
                requestTime: requestTime,
                responseTime: responseTime
            )
        )
    }

    /// The primitive initialiser, for headers already made storable (a refresh, the disk cache).
    init(
        status: Int,
        storedHeaders: [(name: String, value: String)],
        body: ByteBuffer,
        varyKey: VaryKey,
        requestTime: Double,
        responseTime: Double,
        correctedInitialAge: Double
    ) {
        let cacheControl = CacheControl(headers: storedHeaders)
        self.status = status
        self.headers = storedHeaders
        self.body = body
        self.statusLine = ByteBuffer(
            string: "HTTP/1.1 \(status) \(HTTPResponseStatus(statusCode: status).reasonPhrase)\r\n"
        )
        var fields = ByteBuffer()
        for (name, value) in storedHeaders where HeaderFields.lowercased(name) != "content-length" {
            fields.writeString("\(name): \(value)\r\n")
        }
        self.renderedFields = fields
        self.requestTime = requestTime
        self.responseTime = responseTime
        self.correctedInitialAge = correctedInitialAge
        self.cacheControl = cacheControl
        self.freshnessLifetime = Freshness.lifetime(
            status: status,
            headers: storedHeaders,
            cacheControl: cacheControl,
            responseTime: responseTime
        )
        self.varyKey = varyKey
        self.etag = HeaderFields.first("etag", in: storedHeaders)
        self.lastModified = HeaderFields.first("last-modified", in: storedHeaders)
        var headCost = 64
        for field in storedHeaders { headCost += field.name.utf8.count + field.value.utf8.count + 32 }
        for (field, value) in zip(varyKey.fields, varyKey.values) {
            headCost += field.utf8.count + (value?.utf8.count ?? 0) + 32
        }
        self.headCost = headCost
    }

    /// §4.2.3 `current_age` at `now`.
    public func age(now: Double) -> Double {
        Freshness.currentAge(correctedInitialAge: self.correctedInitialAge, responseTime: self.responseTime, now: now)
    }

    /// Fresh while the lifetime exceeds the age (§4.2: `freshness_lifetime > current_age`).
    public func isFresh(now: Double) -> Bool {
        self.freshnessLifetime > self.age(now: now)
    }

    /// How long the object has been stale at `now` (0 while fresh).
    public func staleness(now: Double) -> Double {
        max(0, self.age(now: now) - self.freshnessLifetime)
    }

    /// The stored fields plus `Age` (whole seconds, §5.1), what the edge sends on a hit.
    public func servedHeaders(now: Double) -> [(name: String, value: String)] {
        var headers = self.headers
        let age = self.age(now: now)
        let seconds = age.isNaN ? 0 : Int(min(age, Double(HeaderFields.deltaSecondsLimit)).rounded(.down))
        headers.append((name: "Age", value: String(seconds)))
        return headers
    }

    // MARK: - Storable header fields

    /// Fields the cache computes itself; never stored, like the hop-by-hop ones (§3.1).
    static let computedFields: Set<String> = ["age", "content-length"]

    static func storable(
        _ headers: [(name: String, value: String)],
        status: Int,
        bodyCount: Int
    ) -> [(name: String, value: String)] {
        let excluded = HeaderFields.hopByHop(in: headers).union(Self.computedFields)
        var stored = headers.filter { !excluded.contains(HeaderFields.lowercased($0.name)) }
        if status != 204 {
            stored.append((name: "Content-Length", value: String(bodyCount)))
        }
        return stored
    }
}

extension CachedObject: Equatable {
    public static func == (lhs: CachedObject, rhs: CachedObject) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body && lhs.requestTime == rhs.requestTime
            && lhs.responseTime == rhs.responseTime && lhs.correctedInitialAge == rhs.correctedInitialAge
            && lhs.varyKey == rhs.varyKey && lhs.headers.count == rhs.headers.count
            && zip(lhs.headers, rhs.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}
