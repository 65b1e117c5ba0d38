import Foundation

/// The resources still to fetch, shared by the connections: a connection that finds the queue
/// empty waits while others are mid-fetch (a stylesheet may name more), and all stop once the
/// queue is empty and nothing is in flight.
actor FetchQueue {
    private var waiting: [URL] = []
    private var seen: Set<String> = []
    private var inFlight = 0
    private var idle: [CheckedContinuation<URL?, Never>] = []

    /// Queues what has not been queued before.
    func add(_ urls: [URL]) {
        for url in urls where self.seen.insert(url.absoluteString).inserted {
            if let waiter = self.idle.popLast() {
                self.inFlight += 1
                waiter.resume(returning: url)
            } else {
                self.waiting.append(url)
            }
        }
    }

    /// The next resource, preferring one of `origin` (the connection's, so it stays in use); nil
    /// once everything is fetched.
    func next(preferring origin: String?) async -> URL? {
        if !self.waiting.isEmpty {
            let index = origin.flatMap { origin in self.waiting.firstIndex { $0.origin == origin } } ?? 0
            self.inFlight += 1
            return self.waiting.remove(at: index)
        }
        if self.inFlight == 0 { return nil }
        return await withCheckedContinuation { self.idle.append($0) }
    }

    /// One fetch ended; its finds were added first.
    func finished() {
        self.inFlight -= 1
        if self.inFlight == 0, self.waiting.isEmpty {
            for waiter in self.idle { waiter.resume(returning: nil) }
            self.idle = []
        }
    }
}

extension URL {
    /// `host:port`: what one connection serves.
    var origin: String { "\(self.host ?? ""):\(self.port ?? 80)" }

    /// The request target: path and query.
    var target: String {
        var target = self.path.isEmpty ? "/" : self.path
        if let query = self.query { target += "?" + query }
        return target
    }
}
