import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// A request as the edge decides on it.
struct EdgeRequest: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer?
    var client: String

    /// The cache's primary key: the request target, as Varnish's default hash (the origin is one).
    var key: String { self.head.uri }
}

/// What the client gets.
enum EdgeAnswer: Sendable {
    /// From the cache; `label` is the `X-Cache` value.
    case cached(EdgeEntry, label: String)
    /// Straight from the origin, not kept.
    case relayed(OriginResponse)
    case failed(OriginFailure)
}

/// The outcome of one origin request, shared by every client that waited on it.
enum FetchOutcome: Sendable {
    /// Kept in the cache; `fromCache` when a 304 refreshed what was kept, so the body is the cache's.
    case stored(EdgeEntry, fromCache: Bool)
    /// Not for a shared cache (private, no-store, a Set-Cookie...): only the client that asked may
    /// have it, the others ask the origin themselves.
    case notStored(OriginResponse)
    case failed(OriginFailure)
}

/// The edge's decisions, apart from its sockets: look up, serve, revalidate, fetch once per object.
final class EdgeCore: Sendable {
    let configuration: EdgeServer.Configuration
    let cache: EdgeCache
    let stats = EdgeStats()
    let origin: OriginClient
    let coalescer = MissCoalescer<FetchOutcome>()
    let logger: Logger

    init(configuration: EdgeServer.Configuration, cache: EdgeCache, logger: Logger) {
        self.configuration = configuration
        self.cache = cache
        self.logger = logger
        self.origin = OriginClient(
            host: configuration.origin.host,
            port: configuration.origin.port,
            authority: configuration.origin.authority,
            connectTimeout: min(configuration.originTimeout, .seconds(3)),
            idleTimeout: configuration.originTimeout,
            maxBodyBytes: max(configuration.cacheBytes, 64 << 20)
        )
    }

    func answer(_ request: EdgeRequest, on eventLoop: EventLoop) -> EventLoopFuture<EdgeAnswer> {
        EdgeStats.bump(self.stats.requests)
        guard request.head.method == .GET || request.head.method == .HEAD else {
            return self.pass(request, on: eventLoop)
        }
        let now = EdgeClock.now()
        guard let entry = self.cache.lookup(request.key, headers: request.head.headers) else {
            EdgeStats.bump(self.stats.misses)
            return self.fetch(request, on: eventLoop)
        }
        switch entry.decision(now: now) {
        case .fresh:
            EdgeStats.bump(self.stats.hits)
            return eventLoop.makeSucceededFuture(.cached(entry, label: "HIT"))
        case .staleWhileRevalidate:
            EdgeStats.bump(self.stats.stale)
            _ = self.revalidate(request, entry, on: eventLoop)
            return eventLoop.makeSucceededFuture(.cached(entry, label: "STALE"))
        case .mustRevalidate:
            let (revalidation, isLeader) = self.revalidate(request, entry, on: eventLoop)
            return revalidation.flatMap { outcome in
                switch outcome {
                case .stored(let fresh, let fromCache):
                    if fromCache { EdgeStats.bump(self.stats.hits) } else { EdgeStats.bump(self.stats.misses) }
                    guard fresh.matches(request.head.headers) else { return self.fetchAlone(request, on: eventLoop) }
                    return eventLoop.makeSucceededFuture(.cached(fresh, label: fromCache ? "HIT" : "MISS"))
                case .notStored(let response):
                    EdgeStats.bump(self.stats.misses)
                    // Not to be shared (private, a Set-Cookie): only the client that asked gets it.
                    guard isLeader else { return self.fetchAlone(request, on: eventLoop) }
                    return eventLoop.makeSucceededFuture(.relayed(response))
                case .failed(let failure):
                    guard entry.mayServeOnOriginFailure(now: EdgeClock.now()) else {
                        EdgeStats.bump(self.stats.misses)
                        return eventLoop.makeSucceededFuture(.failed(failure))
                    }
                    EdgeStats.bump(self.stats.stale)
                    self.logger.notice("edge: serving \(request.key) stale: \(failure)")
                    return eventLoop.makeSucceededFuture(.cached(entry, label: "STALE"))
                }
            }
        }
    }

    /// The edge's figures as JSON: what `/.ferry/status` and the control socket's `stats` answer.
    func statusJSON() -> String {
        let figures: [String: Any] = [
            "name": self.configuration.name,
            "region": self.configuration.region ?? "",
            "origin": "\(self.configuration.origin)",
            "load": (self.stats.load * 10).rounded() / 10,
            "hit_ratio": (self.stats.hitRatio * 1000).rounded() / 1000,
            "requests": self.stats.requests.load(ordering: .relaxed),
            "hits": self.stats.hits.load(ordering: .relaxed),
            "misses": self.stats.misses.load(ordering: .relaxed),
            "stale": self.stats.stale.load(ordering: .relaxed),
            "passes": self.stats.passes.load(ordering: .relaxed),
            "origin_requests": self.stats.originRequests.load(ordering: .relaxed),
            "origin_failures": self.stats.originFailures.load(ordering: .relaxed),
            "connections": self.stats.connections.load(ordering: .relaxed),
            "objects": self.cache.count,
            "bytes": self.cache.bytes,
            "byte_limit": self.configuration.cacheBytes,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: figures, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: Origin requests

    /// A miss: one origin request however many clients miss at once.
    private func fetch(_ request: EdgeRequest, on eventLoop: EventLoop) -> EventLoopFuture<EdgeAnswer> {
        let (future, isLeader) = self.coalescer.outcome(for: request.key, on: eventLoop) {
            self.originFetch(request, conditional: nil, on: eventLoop)
        }
        return future.flatMap { outcome in
            switch outcome {
            case .stored(let entry, _):
                guard entry.matches(request.head.headers) else { return self.fetchAlone(request, on: eventLoop) }
                return eventLoop.makeSucceededFuture(.cached(entry, label: "MISS"))
            case .notStored(let response):
                guard isLeader else { return self.fetchAlone(request, on: eventLoop) }
                return eventLoop.makeSucceededFuture(.relayed(response))
            case .failed(let failure):
                return eventLoop.makeSucceededFuture(.failed(failure))
            }
        }
    }

    /// Another variant than the one fetched, or an answer not to be shared: this client's own request.
    private func fetchAlone(_ request: EdgeRequest, on eventLoop: EventLoop) -> EventLoopFuture<EdgeAnswer> {
        self.originFetch(request, conditional: nil, on: eventLoop).map { outcome in
            switch outcome {
            case .stored(let entry, _): .cached(entry, label: "MISS")
            case .notStored(let response): .relayed(response)
            case .failed(let failure): .failed(failure)
            }
        }
    }

    /// Asks the origin whether `entry` still holds, once for all who ask at the same time.
    private func revalidate(
        _ request: EdgeRequest,
        _ entry: EdgeEntry,
        on eventLoop: EventLoop
    ) -> (future: EventLoopFuture<FetchOutcome>, isLeader: Bool) {
        self.coalescer.outcome(for: request.key, on: eventLoop) {
            self.originFetch(request, conditional: entry, on: eventLoop)
        }
    }

    /// One GET to the origin, conditional on `conditional` when revalidating it; stores what may be
    /// stored.
    private func originFetch(
        _ request: EdgeRequest,
        conditional: EdgeEntry?,
        on eventLoop: EventLoop
    ) -> EventLoopFuture<FetchOutcome> {
        var headers = Self.forwardedHeaders(request)
        for (name, value) in conditional?.conditionalHeaders ?? [] { headers.replaceOrAdd(name: name, value: value) }
        EdgeStats.bump(self.stats.originRequests)
        // A HEAD is fetched as a GET, as Varnish does, so the object can be kept.
        return self.origin.fetch(method: .GET, uri: request.head.uri, headers: headers, body: nil, on: eventLoop)
            .map { response -> FetchOutcome in
                if response.status == .notModified, let conditional {
                    // A 304 for another version than the one kept (RFC 9111 §4.3.4): ask again, whole.
                    guard conditional.isValidated(by: response.headers.fields) else {
                        return .failed(.malformed("the origin answered 304 for another version"))
                    }
                    return .stored(self.cache.refresh(request.key, conditional, with: response), fromCache: true)
                }
                if response.status.code >= 500, conditional != nil {
                    // For stale-if-error, a 5xx from the origin is a failure like a refused connection.
                    EdgeStats.bump(self.stats.originFailures)
                    return .failed(.answered(response))
                }
                switch self.cache.store(request.key, response: response, requestHeaders: request.head.headers) {
                case .stored(let entry):
                    return .stored(entry, fromCache: false)
                case .refused(let reason):
                    self.logger.debug("edge: not keeping \(request.key): \(reason)")
                    return .notStored(response)
                }
            }
            .flatMapErrorThrowing { error in
                EdgeStats.bump(self.stats.originFailures)
                let failure = error as? OriginFailure ?? .unreachable("\(error)")
                self.logger.warning("edge: \(request.head.method) \(request.key): \(failure)")
                return .failed(failure)
            }
    }

    /// A request the cache does not take (POST, PUT, ...): relayed, and a success invalidates what
    /// is kept for its target (RFC 9111 §4.4).
    private func pass(_ request: EdgeRequest, on eventLoop: EventLoop) -> EventLoopFuture<EdgeAnswer> {
        EdgeStats.bump(self.stats.passes)
        EdgeStats.bump(self.stats.originRequests)
        return self.origin.fetch(
            method: request.head.method,
            uri: request.head.uri,
            headers: Self.forwardedHeaders(request, keepingConditionals: true),
            body: request.body,
            on: eventLoop
        )
        .map { response in
            if (200..<400).contains(response.status.code) { _ = self.cache.purge(request.key) }
            return .relayed(response)
        }
        .flatMapErrorThrowing { error in
            EdgeStats.bump(self.stats.originFailures)
            return .failed(error as? OriginFailure ?? .unreachable("\(error)"))
        }
    }

    /// The edge fetches whole objects unconditionally, and answers ranges and conditionals itself.
    static let answeredByTheEdge: Set<String> = [
        "range", "if-range", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since",
    ]

    /// The client's fields as the origin should see them, with X-Forwarded-For and Via added.
    static func forwardedHeaders(_ request: EdgeRequest, keepingConditionals: Bool = false) -> HTTPHeaders {
        var headers = HTTPHeaders()
        let hopByHop = HeaderFields.hopByHop(in: request.head.headers)
        for (name, value) in request.head.headers {
            let lowered = HeaderFields.lowercased(name)
            guard !hopByHop.contains(lowered), lowered != "content-length" else { continue }
            if !keepingConditionals, Self.answeredByTheEdge.contains(lowered) { continue }
            headers.add(name: name, value: value)
        }
        let forwarded = request.head.headers["x-forwarded-for"].first.map { "\($0), \(request.client)" }
        headers.replaceOrAdd(name: "X-Forwarded-For", value: forwarded ?? request.client)
        headers.add(name: "Via", value: "1.1 ferry-edge")
        return headers
    }
}
