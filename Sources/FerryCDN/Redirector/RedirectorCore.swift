import FerryEndpoints
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The policy as it stands: the configuration, and each edge's health and load from the last
/// checks. Replaced whole after every round of checks and on reload; read on every answer.
struct RedirectorSnapshot: Sendable {
    let configuration: RedirectorConfiguration
    /// The configuration's policy and DNS responder, made once per configuration and kept across
    /// rounds of checks.
    let rules: RedirectPolicy
    let responder: DNSResponder
    let health: [String: EdgeHealth]
    let policy: PolicySnapshot

    /// A new configuration: its policy and responder made, every edge at `health`.
    init(configuration: RedirectorConfiguration, health: [String: EdgeHealth]) throws {
        self.init(
            configuration: configuration,
            rules: try configuration.policy(),
            responder: DNSResponder(configuration: configuration),
            health: health
        )
    }

    private init(
        configuration: RedirectorConfiguration,
        rules: RedirectPolicy,
        responder: DNSResponder,
        health: [String: EdgeHealth]
    ) {
        self.configuration = configuration
        self.rules = rules
        self.responder = responder
        self.health = health
        self.policy = rules.snapshot(
            configuration.edges.map { edge in
                let health = health[edge.name] ?? EdgeHealth()
                return EdgeStatus(
                    name: edge.name,
                    region: edge.region,
                    address: .init(host: edge.address.host, port: edge.address.port),
                    capacity: edge.capacity,
                    healthy: health.up,
                    load: health.load,
                    healthDetail: health.checks == 0 ? nil : health.lastProblem
                )
            }
        )
    }

    /// The same configuration with the edges' health as found now.
    func with(health: [String: EdgeHealth]) -> RedirectorSnapshot {
        RedirectorSnapshot(
            configuration: self.configuration,
            rules: self.rules,
            responder: self.responder,
            health: health
        )
    }
}

/// The redirector's decisions, apart from its sockets: DNS answers, HTTP locations, the edges'
/// health.
final class RedirectorCore: Sendable {
    private let current: NIOLockedValueBox<RedirectorSnapshot>
    let logger: Logger
    let watch = EdgeWatch()
    /// When each edge's held connection last ended: a check that began before then does not
    /// bring the edge back.
    private let lostAt = NIOLockedValueBox<[String: ContinuousClock.Instant]>([:])

    init(_ configuration: RedirectorConfiguration, logger: Logger) throws {
        self.current = NIOLockedValueBox(try RedirectorSnapshot(configuration: configuration, health: [:]))
        self.logger = logger
        self.watch.onLost { [weak self] name in self?.edgeLost(name) }
    }

    /// An edge's held connection ended: out of the answers now, until a check finds it again.
    private func edgeLost(_ name: String) {
        let edge: RedirectorConfiguration.Edge? = self.current.withLockedValue { current in
            self.lostAt.withLockedValue { $0[name] = .now }
            guard current.health[name]?.up == true else { return nil }
            current = current.with(
                health: current.health.updating(name) {
                    $0.up = false
                    $0.lastProblem = "its connection closed and a new one was refused: the edge's process is gone"
                }
            )
            return current.configuration.edges.first { $0.name == name }
        }
        if let edge {
            self.logger.warning(
                "redirector: edge \(edge.name) \(edge.address) (\(edge.region)) is down: its connection closed and a new one was refused"
            )
        }
    }

    var snapshot: RedirectorSnapshot { self.current.withLockedValue { $0 } }

    /// Takes a new configuration; edges that keep their name and address keep their health.
    func reload(_ configuration: RedirectorConfiguration) throws {
        let old = self.snapshot
        var configuration = configuration
        configuration.nameServerAddress = old.configuration.nameServerAddress
        var health: [String: EdgeHealth] = [:]
        for edge in configuration.edges {
            if old.configuration.edges.contains(edge.self), let kept = old.health[edge.name] {
                health[edge.name] = kept
            }
        }
        let snapshot = try RedirectorSnapshot(configuration: configuration, health: health)
        self.current.withLockedValue { $0 = snapshot }
        // Addresses may have changed: the next round of checks holds connections anew.
        self.watch.close()
    }

    /// One round of health checks, logged where an edge changes state.
    func checkEdges() async {
        let started = ContinuousClock.now
        let snapshot = self.snapshot
        let checker = EdgeChecker(interval: snapshot.configuration.checkInterval, logger: self.logger)
        var found = await checker.check(snapshot.configuration.edges)
        for edge in snapshot.configuration.edges {
            let before = snapshot.health[edge.name] ?? EdgeHealth()
            found[edge.name, default: EdgeHealth()].checks = before.checks + 1
            if found[edge.name]?.silentChecks == 1 {
                let silent = before.silentChecks + 1
                found[edge.name]?.silentChecks = silent
                // A first late answer from an edge that was up keeps it up, with its last figures.
                if before.up, silent < EdgeChecker.silentChecksToFail {
                    found[edge.name]?.up = true
                    found[edge.name]?.load = before.load
                    found[edge.name]?.hitRatio = before.hitRatio
                }
            }
            let after = found[edge.name] ?? EdgeHealth()
            if after.up, !before.up {
                self.logger.info("redirector: edge \(edge.name) \(edge.address) (\(edge.region)) is up")
            } else if !after.up, before.up || before.checks == 0 {
                self.logger.warning(
                    "redirector: edge \(edge.name) \(edge.address) (\(edge.region)) is down: \(after.lastProblem ?? "?")"
                )
            }
        }
        let kept = self.current.withLockedValue { current in
            // A reload during the round wins; its edges are checked next round.
            guard current.configuration.edges == snapshot.configuration.edges else { return false }
            // An edge whose held connection ended during the round stays down (under this lock,
            // which edgeLost takes too).
            for (name, at) in self.lostAt.withLockedValue({ $0 }) where at > started && found[name]?.up == true {
                found[name]?.up = false
                found[name]?.lastProblem = "its connection closed during the check"
            }
            current = current.with(health: found)
            return true
        }
        if kept { self.watch.follow(snapshot.configuration.edges.filter { found[$0.name]?.up == true }) }
    }

    /// The answer to one DNS message, or nil when it deserves none (not even a header to answer).
    func answerDNS(_ query: UnsafeRawBufferPointer, client: IPAddress?, overTCP: Bool) -> [UInt8]? {
        let snapshot = self.snapshot
        return snapshot.responder.answer(query, client: client, overTCP: overTCP) { client in
            snapshot.policy.choose(client: client)
        }
    }

    /// Where an HTTP client is sent for `target`.
    func location(client: IPAddress?, target: String) -> String {
        let snapshot = self.snapshot
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first
        switch snapshot.policy.choose(client: client, path: path).target {
        case .edge(let edge):
            return "http://\(ServiceEndpoint(host: edge.address.host, port: edge.address.port))\(target)"
        case .origin: return "\(snapshot.configuration.origin)\(target)"
        }
    }

    /// The client an HTTP request speaks for: the peer, or, when the peer is a trusted proxy, the
    /// nearest address in X-Forwarded-For that is not one.
    func clientAddress(peer: IPAddress?, forwardedFor: [String]) -> IPAddress? {
        let trusted = self.snapshot.configuration.trustedProxies
        guard let peer, trusted.contains(where: { $0.contains(peer) }) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() {
            guard let address = IPAddress(hop) else { return peer }
            if !trusted.contains(where: { $0.contains(address) }) { return address }
        }
        return peer
    }

    /// The edges as the redirector sees them, for `/.ferry/status`.
    func statusJSON() -> String {
        let snapshot = self.snapshot
        let edges: [[String: Any]] = snapshot.configuration.edges.map { edge in
            let health = snapshot.health[edge.name] ?? EdgeHealth()
            var entry: [String: Any] = [
                "name": edge.name, "region": edge.region, "address": "\(edge.address)", "capacity": edge.capacity,
                "up": health.up, "load": health.load, "hit_ratio": health.hitRatio, "checks": health.checks,
                "held": self.watch.holds(edge.name), "renewed": self.watch.renewals(of: edge.name),
            ]
            entry["problem"] = health.lastProblem
            return entry
        }
        let document: [String: Any] = [
            "zone": snapshot.configuration.zone.description, "origin": "\(snapshot.configuration.origin)",
            "edges": edges,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

extension Dictionary where Key == String, Value == EdgeHealth {
    fileprivate func updating(_ name: String, _ change: (inout EdgeHealth) -> Void) -> Self {
        var copy = self
        change(&copy[name, default: EdgeHealth()])
        return copy
    }
}
