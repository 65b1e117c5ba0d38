/// What the edge does with a stored object that matches a request (RFC 9111 §4, RFC 5861 §3).
public enum CacheDecision: Sendable, Equatable {
    /// Serve it as it is (`X-Cache: HIT`).
    case fresh
    /// Serve it stale now and revalidate in the background: it is stale by no more than its
    /// `stale-while-revalidate` seconds.
    case staleWhileRevalidate
    /// Ask the origin first, with `conditionalHeaders`, and serve only what it answers.
    case mustRevalidate
}

extension CachedObject {
    /// Whether a stale copy may never be served: `must-revalidate`, `proxy-revalidate` and
    /// `s-maxage` (which implies `proxy-revalidate`, §5.2.2.10) forbid it (§4.2.4), even on error.
    public var forbidsStale: Bool {
        self.cacheControl.mustRevalidate || self.cacheControl.proxyRevalidate || self.cacheControl.sMaxAge != nil
    }

    /// The decision for a request at `now`. `no-cache` always revalidates (§5.2.2.4), a fresh
    /// object is served, and a stale one is served only within its `stale-while-revalidate` window
    /// (the bound included: RFC 5861 says "up to") and when nothing forbids stale serving.
    public func decision(now: Double) -> CacheDecision {
        if self.cacheControl.noCache { return .mustRevalidate }
        if self.isFresh(now: now) { return .fresh }
        guard !self.forbidsStale, let window = self.cacheControl.staleWhileRevalidate,
            self.staleness(now: now) <= Double(window)
        else { return .mustRevalidate }
        return .staleWhileRevalidate
    }

    /// Whether the object may be served when the origin could not answer (connection error,
    /// timeout or a 5xx; the edge decides which failures count). Yes while fresh or stale by no more
    /// than `stale-if-error` seconds (RFC 5861 §4); never with `no-cache` (§5.2.2.4 requires a
    /// successful validation) or when stale serving is forbidden (`forbidsStale`).
    public func mayServeOnOriginFailure(now: Double) -> Bool {
        if self.cacheControl.noCache { return false }
        if self.isFresh(now: now) { return true }
        guard !self.forbidsStale, let window = self.cacheControl.staleIfError else { return false }
        return self.staleness(now: now) <= Double(window)
    }
}
