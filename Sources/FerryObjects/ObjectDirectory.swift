import FerryEndpoints
import FerryWire
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Where objects are named, and the guarantee that a persistent object is active on at most one
/// node of the cluster at a time: each persistent activation holds `object:ID` through
/// ``ExclusiveClaims``. A node that loses a claim drops the activation without saving; a process
/// that is not scheduled at all can still be late, which the store's epoch fence covers. Without a
/// daemon (tests, one node alone), claims are local.
public final class ObjectDirectory: Sendable {
    let registry: RegistryAddress?
    let node: ServiceEndpoint
    let ttl: Duration
    private let claims: ExclusiveClaims?
    private let epochs = NIOLockedValueBox(UInt64(Date().timeIntervalSince1970 * 1000) << 12)

    public init(registry: RegistryAddress?, node: ServiceEndpoint, ttl: Duration = .seconds(5), logger: Logger) {
        self.registry = registry
        self.claims = registry.map { ExclusiveClaims(registry: $0, holder: node, ttl: ttl, logger: logger) }
        self.node = node
        self.ttl = ttl
    }

    /// Called with an object id and the lease id whose claim was lost; that activation must go.
    func onLost(_ body: @escaping @Sendable (String, UInt64) -> Void) {
        self.claims?.onLost { name, lease in body(ObjectNames.id(ofClaim: name), lease) }
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
        guard let claims = self.claims else { return 0 }
        do {
            return try await claims.claim(ObjectNames.claim(id), takeover: takeover).leaseID
        } catch let error as ErrorMessage where error.code == .held {
            if let binding = try await self.holder(of: id) { throw ObjectElsewhere(binding: binding) }
            throw error
        }
    }

    /// The lease this node holds on `id`, if any (what a move hands over).
    func lease(of id: String) -> UInt64? {
        self.claims?.lease(of: ObjectNames.claim(id))?.leaseID
    }

    /// Gives `id` up (it was deactivated).
    func release(_ id: String) async {
        await self.claims?.release(ObjectNames.claim(id))
    }

    /// Stops renewing `id` without deregistering: the node it moved to took the lease over.
    func forget(_ id: String) {
        self.claims?.forget(ObjectNames.claim(id))
    }

    /// The node that holds `id` now, if any holds it. The binding's epoch is 0: the daemon knows
    /// the lease, not the activation; the first answer tells the caller the epoch.
    func holder(of id: String) async throws -> ObjectBinding? {
        guard let endpoint = try await self.claims?.holder(of: ObjectNames.claim(id))?.endpoints.first else {
            return nil
        }
        return ObjectBinding(object: id, host: endpoint.host, port: endpoint.port, epoch: 0)
    }

    /// Keeps the claims until cancelled (see ``ExclusiveClaims/keepClaims()``).
    func keepClaims() async {
        await self.claims?.keepClaims()
    }

    /// Closes the registry connection. Claims still held are not given up: they run out.
    func close() async {
        await self.claims?.close()
    }
}

/// The object is active on another node: call it there.
struct ObjectElsewhere: Error {
    var binding: ObjectBinding
}
