import Foundation
import Logging
import NIOCore
import NIOPosix

/// What the last checks of one edge found.
struct EdgeHealth: Sendable, Equatable {
    /// Whether the last check passed; an edge is answered only once a check has passed.
    var up = false
    var load = 0.0
    var hitRatio = 0.0
    var lastProblem: String?
    var checks = 0
    /// Checks in a row that got no answer within their time; see `EdgeChecker.silentChecksToFail`.
    var silentChecks = 0
}

/// Active checks of every edge, each `interval`: `GET /.ferry/status` must answer 200 within
/// half an interval, and its JSON carries the load and hit ratio the edge reports. An edge that
/// refuses, breaks off or answers wrongly is out of answers at once, so within one interval of
/// failing; one that is only slow is out on its second silent check in a row, since one late
/// answer is as often a busy machine as a dead edge (HAProxy's `fall` is 3 for all failures).
struct EdgeChecker: Sendable {
    let interval: Duration
    let logger: Logger

    static let silentChecksToFail = 2

    /// Checks each edge once, all at the same time.
    func check(_ edges: [RedirectorConfiguration.Edge]) async -> [String: EdgeHealth] {
        let timeout = max(self.interval / 2, .milliseconds(200))
        return await withTaskGroup(of: (String, EdgeHealth).self) { group in
            for edge in edges {
                group.addTask { (edge.name, await Self.check(edge, timeout: timeout)) }
            }
            var found: [String: EdgeHealth] = [:]
            for await (name, health) in group { found[name] = health }
            return found
        }
    }

    static func check(_ edge: RedirectorConfiguration.Edge, timeout: Duration) async -> EdgeHealth {
        let client = OriginClient(
            host: edge.address.host,
            port: edge.address.port,
            authority: "\(edge.address)",
            connectTimeout: timeout,
            idleTimeout: timeout,
            maxBodyBytes: 64 << 10
        )
        var health = EdgeHealth()
        do {
            let response = try await client.fetch(
                method: .GET,
                uri: EdgeServer.statusPath,
                headers: [:],
                body: nil,
                on: MultiThreadedEventLoopGroup.singleton.any()
            ).get()
            guard response.status == .ok else {
                health.lastProblem = "its status answered \(response.status.code)"
                return health
            }
            health.up = true
            let figures =
                (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)))
                as? [String: Any]
            health.load = (figures?["load"] as? NSNumber)?.doubleValue ?? 0
            health.hitRatio = (figures?["hit_ratio"] as? NSNumber)?.doubleValue ?? 0
        } catch let failure as OriginFailure {
            health.lastProblem = failure.checkProblem
            if case .timedOut = failure { health.silentChecks = 1 }
        } catch {
            health.lastProblem = "\(error)"
        }
        return health
    }
}

extension OriginFailure {
    /// What a failed check says of the edge.
    var checkProblem: String {
        switch self {
        case .unreachable(let reason): "its status cannot be fetched: \(reason)"
        case .timedOut(let limit): "its status did not come within \(limit)"
        default: "its status is not a whole HTTP answer (\(self))"
        }
    }
}
