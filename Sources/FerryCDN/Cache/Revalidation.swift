/// Conditional revalidation of a stored object (RFC 9111 §4.3).
extension CachedObject {
    /// The preconditions to send to the origin (§4.3.1): `If-None-Match` with the stored `ETag` and
    /// `If-Modified-Since` with the stored `Last-Modified`, each when present. Empty means the object
    /// has no validator and the origin can only send it again in full.
    public var conditionalHeaders: [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        if let etag = self.etag { headers.append((name: "If-None-Match", value: etag)) }
        if let lastModified = self.lastModified { headers.append((name: "If-Modified-Since", value: lastModified)) }
        return headers
    }

    /// Whether a 304 with `notModifiedHeaders` is about this object (§4.3.4): its `ETag`, if any,
    /// matches ours by weak comparison, else its `Last-Modified`, if any, equals ours. A 304 naming a
    /// different representation must not update this one; refetch in full instead.
    public func isValidated(by notModifiedHeaders: [(name: String, value: String)]) -> Bool {
        if let etag = HeaderFields.first("etag", in: notModifiedHeaders) {
            guard let stored = self.etag else { return false }
            return Self.opaqueTag(etag) == Self.opaqueTag(stored)
        }
        if let lastModified = HeaderFields.first("last-modified", in: notModifiedHeaders) {
            return self.lastModified.map(HeaderFields.trimmed) == HeaderFields.trimmed(lastModified)
        }
        return true
    }

    /// The object updated by a 304 (§4.3.4, §3.2): each field in the 304 replaces all stored fields of
    /// that name; the body and status stay. Not taken from the 304: hop-by-hop fields, `Content-Length`
    /// and the content's own metadata (`Content-Encoding`, `Content-Range`, `Transfer-Encoding`), which
    /// describe the stored body, and `Set-Cookie`, which a shared cache must not replay to everyone.
    /// Its age is computed afresh from the 304's `Date` and `Age` and the revalidation's times, so a
    /// successful revalidation makes the object fresh again for its (possibly new) lifetime. The variant's
    /// secondary key stays: the 304 validated this very representation. Check `isValidated(by:)` first.
    public func refreshed(
        with notModifiedHeaders: [(name: String, value: String)],
        requestTime: Double,
        responseTime: Double
    ) -> CachedObject {
        let excluded = HeaderFields.hopByHop(in: notModifiedHeaders).union(Self.computedFields)
            .union(Self.notRefreshedFields)
        let updates = notModifiedHeaders.filter { !excluded.contains(HeaderFields.lowercased($0.name)) }
        let replaced = Set(updates.map { HeaderFields.lowercased($0.name) })
        let kept = self.headers.filter { !replaced.contains(HeaderFields.lowercased($0.name)) }
        return CachedObject(
            status: self.status,
            storedHeaders: kept + updates,
            body: self.body,
            varyKey: self.varyKey,
            requestTime: requestTime,
            responseTime: responseTime,
            correctedInitialAge: Freshness.correctedInitialAge(
                headers: notModifiedHeaders,
                requestTime: requestTime,
                responseTime: responseTime
            )
        )
    }

    static let notRefreshedFields: Set<String> = ["content-encoding", "content-range", "set-cookie"]

    /// The opaque tag of an entity tag, without the weakness indicator, for weak comparison.
    static func opaqueTag(_ etag: String) -> String {
        let trimmed = HeaderFields.trimmed(etag)
        return trimmed.hasPrefix("W/") ? String(trimmed.dropFirst(2)) : trimmed
    }
}
