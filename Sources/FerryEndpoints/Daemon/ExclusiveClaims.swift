import FerryWire
import Logging
import NIOConcurrencyHelpers

/// Names a process holds exclusively at a registry (an endpoint daemon, or etcd): the guarantee that a persistent
/// object is active, or a Ferry process runs, on at most one node of the cluster at a time.
///
/// A holder claims a name with an exclusive, leased registration. While the lease is held no other
/// holder can claim the name (except by taking the lease over, in one step, when the holder hands
/// it on); a holder that dies stops renewing, the lease runs out, and another may claim it. A
/// holder that finds its lease gone, or that has not renewed it for half its ttl (it cannot reach
/// the registry), is told through ``onLost(_:)`` and must give up what the name stood for. That
/// check runs on its own clock, so a renewal that hangs cannot hold it up.
public final class ExclusiveClaims: Sendable {
    public let registry: RegistryAddress
    /// Where the holder is reached: the endpoint every claim registers.
    public let holder: ServiceEndpoint
    public let ttl: Duration
    private let logger: Logger
    private let state = NIOLockedValueBox(State())
    private let endpoints: SharedEndpointClient

    private struct State {
        var claims: [String: Claim] = [:]
        var onLost: (@Sendable (String, UInt64) -> Void)?
        /// Names being claimed again (a holder refreshing its metadata): the old lease's renewal
        /// failing meanwhile is expected, not a loss.
        var claiming: [String: Int] = [:]
    }

    /// A lease held on a name, and when the request that last granted or renewed it was sent:
    /// the lease surely lasts its ttl from then.
    struct Claim {
        var lease: EndpointLease
        var metadata: [String: String]
        var renewedAt: ContinuousClock.Instant
        var ttl: Duration { .milliseconds(Int64(self.lease.ttlMilliseconds)) }
    }

    public init(registry: RegistryAddress, holder: ServiceEndpoint, ttl: Duration = .seconds(5), logger: Logger) {
        self.registry = registry
        self.endpoints = SharedEndpointClient(registry: registry, logger: logger)
        self.holder = holder
        self.ttl = ttl
        self.logger = logger
    }

    /// Called with a name and the lease id whose claim was lost; what it stood for must go.
    public func onLost(_ body: @escaping @Sendable (String, UInt64) -> Void) {
        self.state.withLockedValue { $0.onLost = body }
    }

    /// Claims `name` for this holder, with `metadata` for those who look it up.
    ///
    /// - Parameter takeover: the lease of the holder handing the name over, if any.
    /// - Returns: the lease.
    /// - Throws: an ``ErrorMessage`` with code `held` when another holder has it.
    @discardableResult
    public func claim(
        _ name: String,
        metadata: [String: String] = [:],
        takeover: UInt64? = nil
    ) async throws
        -> EndpointLease
    {
        let client = try await self.client()
        var metadata = metadata
        metadata[EndpointTable.exclusiveKey] = "true"
        if let takeover { metadata[EndpointTable.takeoverKey] = String(takeover) }
        let sent = ContinuousClock.now
        self.state.withLockedValue { $0.claiming[name, default: 0] += 1 }
        defer {
            self.state.withLockedValue { state in
                state.claiming[name]! -= 1
                if state.claiming[name] == 0 { state.claiming[name] = nil }
            }
        }
        let lease = try await client.register(name, endpoints: [self.holder], metadata: metadata, ttl: self.ttl)
        self.state.withLockedValue {
            $0.claims[name] = Claim(lease: lease, metadata: metadata, renewedAt: sent)
        }
        return lease
    }

    /// The lease this holder holds on `name`, if any (what a move hands over).
    public func lease(of name: String) -> EndpointLease? {
        self.state.withLockedValue { $0.claims[name]?.lease }
    }

    /// Gives `name` up.
    public func release(_ name: String) async {
        guard let claim = self.state.withLockedValue({ $0.claims.removeValue(forKey: name) }) else { return }
        try? await self.client().deregister(claim.lease)
    }

    /// Stops renewing `name` without deregistering: another holder took the lease over.
    public func forget(_ name: String) {
        self.state.withLockedValue { _ = $0.claims.removeValue(forKey: name) }
    }

    /// The registration of whoever holds `name` now, if anyone does.
    public func holder(of name: String) async throws -> EndpointEntry? {
        do {
            return try await self.client().lookup(name).first
        } catch let error as ErrorMessage where error.code == .notFound {
            return nil
        }
    }

    /// Keeps the claims until cancelled: renews them every quarter ttl, and, on a clock of its
    /// own, gives up every claim not renewed for half its ttl.
    public func keepClaims() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.renewEvery(self.ttl / 4) }
            group.addTask { await self.giveUpOverdueEvery(self.ttl / 8) }
            await group.waitForAll()
        }
    }

    private func giveUpOverdueEvery(_ interval: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let now = ContinuousClock.now
            let overdue = self.state.withLockedValue { state in
                state.claims.filter { now - $0.value.renewedAt > $0.value.ttl / 2 }.map { ($0.key, $0.value.lease) }
            }
            for (name, lease) in overdue {
                self.lost(
                    name,
                    lease: lease,
                    because: "it was not renewed for half its ttl of \(lease.ttlMilliseconds) ms"
                )
            }
        }
    }

    private func renewEvery(_ interval: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let leases = self.state.withLockedValue { $0.claims.values.map(\.lease) }
            guard !leases.isEmpty else { continue }
            do {
                let client = try await self.client()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for lease in leases {
                        group.addTask { try await self.renew(lease, client) }
                    }
                    try await group.waitForAll()
                }
            } catch {
                if Task.isCancelled { return }
                self.logger.warning("cannot renew claims at \(self.registry): \(error); retrying")
                self.endpoints.reset()
            }
        }
    }

    private func renew(_ lease: EndpointLease, _ client: any Registry) async throws {
        let sent = ContinuousClock.now
        do {
            let renewed = try await client.renew(lease, timeout: self.ttl / 4)
            self.state.withLockedValue { state in
                // Only the claim this renewal was for: the name may have been claimed anew since.
                guard state.claims[lease.name]?.lease.leaseID == lease.leaseID else { return }
                state.claims[lease.name]?.lease = renewed
                state.claims[lease.name]?.renewedAt = sent
            }
        } catch let error as ErrorMessage where error.code == .notHeld {
            self.lost(lease.name, lease: lease, because: error.message)
        }
    }

    private func lost(_ name: String, lease: EndpointLease, because reason: String) {
        let onLost: (@Sendable (String, UInt64) -> Void)? = self.state.withLockedValue { state in
            guard state.claims[name]?.lease.leaseID == lease.leaseID, state.claiming[name] == nil else { return nil }
            state.claims[name] = nil
            return state.onLost
        }
        guard let onLost else { return }
        self.logger.error("lost the claim on '\(name)' (\(reason)); giving it up here")
        onLost(name, lease.leaseID)
    }

    /// The shared connection to the registry.
    public func client() async throws -> any Registry {
        try await self.endpoints.client()
    }

    /// Closes the registry connection. Claims still held are not given up: they run out.
    public func close() async {
        await self.endpoints.close()
    }
}
