import FerryEndpoints
import FerryWire
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Where objects are named, and the guarantee that a persistent object is active on at most one
/// node of the cluster at a time.
///
/// A node claims `object:ID` at the endpoint daemon with an exclusive, leased registration. While
/// the lease is held no other node can claim the name; a node that dies stops renewing, the lease
/// runs out, and another node may claim it. A node that finds its lease gone, or that has not
/// renewed it for half its ttl (it cannot reach the daemon), drops the activation without saving.
/// That check runs on its own clock, so a renewal that hangs cannot hold it up; a process that is
/// not scheduled at all can still be late, which the store's epoch fence covers. Without a daemon
/// (tests, one node alone), claims are local.
public final class ObjectDirectory: Sendable {
    let daemon: ServiceEndpoint?
    let node: ServiceEndpoint
    let ttl: Duration
    private let logger: Logger
    private let state = NIOLockedValueBox(State())
    private let endpoints: SharedEndpointClient?
    private let epochs = NIOLockedValueBox(UInt64(Date().timeIntervalSince1970 * 1000) << 12)

    private struct State {
        var claims: [String: Claim] = [:]
        var onLost: (@Sendable (String, UInt64) -> Void)?
    }

    /// A lease held on an object, and when the request that last granted or renewed it was sent:
    /// the lease surely lasts its ttl from then.
    struct Claim {
        var lease: EndpointLease
        var renewedAt: ContinuousClock.Instant
        var ttl: Duration { .milliseconds(Int64(self.lease.ttlMilliseconds)) }
    }

    public init(daemon: ServiceEndpoint?, node: ServiceEndpoint, ttl: Duration = .seconds(5), logger: Logger) {
        self.daemon = daemon
        self.endpoints = daemon.map { SharedEndpointClient(daemon: $0, logger: logger) }
        self.node = node
        self.ttl = ttl
        self.logger = logger
    }

    /// Called with an object id and the lease id whose claim was lost; that activation must go.
    func onLost(_ body: @escaping @Sendable (String, UInt64) -> Void) {
        self.state.withLockedValue { $0.onLost = body }
    }

    /// An epoch for a transient activation: larger than any this node gave before, across
    /// restarts (the clock). Persistent activations take theirs from the store.
    func nextLocalEpoch() -> UInt64 {
        self.epochs.withLockedValue { epoch in
            epoch = max(epoch + 1, UInt64(Date().timeIntervalSince1970 * 1000) << 12)
            return epoch
        }
    }

    /// Claims `id` for this node; returns the lease id (0 without a daemon).
    ///
    /// - Parameter takeover: the lease of the node handing the object over (a move), if any.
    /// - Throws: ``ObjectElsewhere`` when another node holds it.
    func claim(_ id: String, takeover: UInt64? = nil) async throws -> UInt64 {
        guard self.daemon != nil else { return 0 }
        let client = try await self.client()
        var metadata = [EndpointTable.exclusiveKey: "true"]
        if let takeover { metadata[EndpointTable.takeoverKey] = String(takeover) }
        let sent = ContinuousClock.now
        do {
            let lease = try await client.register(
                ObjectNames.claim(id),
                endpoints: [self.node],
                metadata: metadata,
                ttl: self.ttl
            )
            self.state.withLockedValue { $0.claims[id] = Claim(lease: lease, renewedAt: sent) }
            return lease.leaseID
        } catch let error as ErrorMessage where error.code == .held {
            if let binding = try await self.holder(of: id) { throw ObjectElsewhere(binding: binding) }
            throw error
        }
    }

    /// The lease this node holds on `id`, if any (what a move hands over).
    func lease(of id: String) -> UInt64? {
        self.state.withLockedValue { $0.claims[id]?.lease.leaseID }
    }

    /// Gives `id` up (it was deactivated).
    func release(_ id: String) async {
        guard let claim = self.state.withLockedValue({ $0.claims.removeValue(forKey: id) }) else { return }
        try? await self.client().deregister(claim.lease)
    }

    /// Stops renewing `id` without deregistering: the node it moved to took the lease over.
    func forget(_ id: String) {
        self.state.withLockedValue { _ = $0.claims.removeValue(forKey: id) }
    }

    /// The node that holds `id` now, if any holds it. The binding's epoch is 0: the daemon knows
    /// the lease, not the activation; the first answer tells the caller the epoch.
    func holder(of id: String) async throws -> ObjectBinding? {
        guard self.daemon != nil else { return nil }
        do {
            guard let endpoint = try await self.client().lookup(ObjectNames.claim(id)).first?.endpoints.first else {
                return nil
            }
            return ObjectBinding(object: id, host: endpoint.host, port: endpoint.port, epoch: 0)
        } catch let error as ErrorMessage where error.code == .notFound {
            return nil
        }
    }

    /// Keeps the claims until cancelled: renews them every quarter ttl, and, on a clock of its
    /// own, gives up every claim not renewed for half its ttl.
    func keepClaims() async {
        guard self.daemon != nil else { return }
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
            for (id, lease) in overdue {
                self.lost(
                    id,
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
                self.logger.warning("cannot renew object claims at the endpoint daemon: \(error); retrying")
                self.endpoints?.reset()
            }
        }
    }

    private func renew(_ lease: EndpointLease, _ client: EndpointClient) async throws {
        let id = ObjectNames.id(ofClaim: lease.name)
        let sent = ContinuousClock.now
        do {
            let renewed = try await client.renew(lease, timeout: self.ttl / 4)
            self.state.withLockedValue { state in
                // Only the claim this renewal was for: the object may have been claimed anew since.
                guard state.claims[id]?.lease.leaseID == lease.leaseID else { return }
                state.claims[id] = Claim(lease: renewed, renewedAt: sent)
            }
        } catch let error as ErrorMessage where error.code == .notHeld {
            self.lost(id, lease: lease, because: error.message)
        }
    }

    private func lost(_ id: String, lease: EndpointLease, because reason: String) {
        let onLost: (@Sendable (String, UInt64) -> Void)? = self.state.withLockedValue { state in
            guard state.claims[id]?.lease.leaseID == lease.leaseID else { return nil }
            state.claims[id] = nil
            return state.onLost
        }
        guard let onLost else { return }
        self.logger.error("lost the claim on object '\(id)' (\(reason)); dropping its activation here")
        onLost(id, lease.leaseID)
    }

    private func client() async throws -> EndpointClient {
        guard let endpoints = self.endpoints else {
            throw ErrorMessage(code: .unavailable, message: "no endpoint daemon")
        }
        return try await endpoints.client()
    }

    /// Closes the daemon connection. Claims still held are not given up: they run out.
    func close() async {
        await self.endpoints?.close()
    }
}

/// The object is active on another node: call it there.
struct ObjectElsewhere: Error {
    var binding: ObjectBinding
}
