import FerryEndpoints
import FerryWire
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Where objects are named, and the guarantee that a persistent object is active on at most one
/// node of the cluster at a time.
///
/// A node claims `object:ID` at the endpoint daemon with an exclusive, leased registration; the
/// lease id is the activation's epoch (the daemon hands out ever larger ones). While the lease
/// is held no other node can claim the name; a node that dies stops renewing, the lease runs
/// out, and another node may claim it. A node that finds its lease gone, or that has not renewed
/// it for half a ttl (it cannot reach the daemon), drops the activation at once without saving,
/// well before another node could claim it. Without a daemon (tests, one node alone),
/// claims are local and epochs come from the clock.
public final class ObjectDirectory: Sendable {
    /// The daemon name of an active persistent object.
    public static func objectName(_ id: String) -> String { "object:\(id)" }
    /// The daemon name under which every node that hosts a type registers.
    public static func typeName(_ type: some StringProtocol) -> String { "objects:\(type)" }
    /// The daemon name under which every object node registers.
    public static let nodesName = "object-nodes"

    let daemon: ServiceEndpoint?
    let node: ServiceEndpoint
    let ttl: Duration
    private let logger: Logger
    private let state = NIOLockedValueBox(State())
    private let epochs = NIOLockedValueBox(UInt64(Date().timeIntervalSince1970 * 1000) << 12)

    private struct State {
        var client: EndpointClient?
        var leases: [String: EndpointLease] = [:]
        /// When the request that last granted or renewed each lease was sent: the lease surely
        /// lasts a ttl from then.
        var renewedAt: [String: ContinuousClock.Instant] = [:]
        var onLost: (@Sendable (String) -> Void)?
    }

    public init(daemon: ServiceEndpoint?, node: ServiceEndpoint, ttl: Duration = .seconds(5), logger: Logger) {
        self.daemon = daemon
        self.node = node
        self.ttl = ttl
        self.logger = logger
    }

    /// Called with an object id whose lease was lost; its activation must go.
    func onLost(_ body: @escaping @Sendable (String) -> Void) {
        self.state.withLockedValue { $0.onLost = body }
    }

    /// A local epoch: larger than any this node gave before, across restarts (the clock).
    func nextLocalEpoch() -> UInt64 {
        self.epochs.withLockedValue { epoch in
            epoch = max(epoch + 1, UInt64(Date().timeIntervalSince1970 * 1000) << 12)
            return epoch
        }
    }

    /// Claims `id` for this node and returns the activation's epoch.
    ///
    /// - Parameter takeover: the lease of the node handing the object over (a move), if any.
    /// - Throws: ``ObjectElsewhere`` when another node holds it.
    func claim(_ id: String, takeover: UInt64? = nil) async throws -> UInt64 {
        guard self.daemon != nil else { return self.nextLocalEpoch() }
        let client = try await self.client()
        var metadata = [EndpointTable.exclusiveKey: "true"]
        if let takeover { metadata[EndpointTable.takeoverKey] = String(takeover) }
        let sent = ContinuousClock.now
        do {
            let lease = try await client.register(
                Self.objectName(id),
                endpoints: [self.node],
                metadata: metadata,
                ttl: self.ttl
            )
            self.state.withLockedValue {
                $0.leases[id] = lease
                $0.renewedAt[id] = sent
            }
            return lease.leaseID
        } catch let error as ErrorMessage where error.code == .held {
            if let binding = try await self.holder(of: id) { throw ObjectElsewhere(binding: binding) }
            throw error
        }
    }

    /// Gives `id` up (it was deactivated).
    func release(_ id: String) async {
        guard
            let lease = self.state.withLockedValue({ state in
                state.renewedAt[id] = nil
                return state.leases.removeValue(forKey: id)
            })
        else { return }
        try? await self.client().deregister(lease)
    }

    /// Stops renewing `id` without deregistering: the node it moved to took the lease over.
    func forget(_ id: String) {
        self.state.withLockedValue {
            $0.leases[id] = nil
            $0.renewedAt[id] = nil
        }
    }

    /// The binding of the node that holds `id` now, if any holds it.
    func holder(of id: String) async throws -> ObjectBinding? {
        guard self.daemon != nil else { return nil }
        do {
            guard let entry = try await self.client().lookup(Self.objectName(id)).first,
                let endpoint = entry.endpoints.first
            else { return nil }
            return ObjectBinding(object: id, host: endpoint.host, port: endpoint.port, epoch: entry.leaseID)
        } catch let error as ErrorMessage where error.code == .notFound {
            return nil
        }
    }

    /// Renews every lease each quarter of the ttl until cancelled. A lease not renewed for half
    /// its ttl is given up here, so its object is never active on two nodes.
    func renewLeases() async {
        guard self.daemon != nil else { return }
        while !Task.isCancelled {
            try? await Task.sleep(for: self.ttl / 4)
            let limit = ContinuousClock.now - self.ttl / 2
            let overdue = self.state.withLockedValue { state in
                state.renewedAt.filter { $0.value < limit }.map(\.key)
            }
            for id in overdue {
                self.lost(
                    id,
                    ErrorMessage(code: .notHeld, message: "it was not renewed for half its ttl of \(self.ttl)")
                )
            }
            let leases = self.state.withLockedValue { Array($0.leases.values) }
            guard !leases.isEmpty else { continue }
            do {
                let client = try await self.client()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for lease in leases {
                        group.addTask {
                            let id = lease.name.objectID
                            let sent = ContinuousClock.now
                            do {
                                let renewed = try await client.renew(lease)
                                self.state.withLockedValue { state in
                                    guard state.leases[id] != nil else { return }
                                    state.leases[id] = renewed
                                    state.renewedAt[id] = sent
                                }
                            } catch let error as ErrorMessage where error.code == .notHeld {
                                self.lost(id, error)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            } catch {
                self.logger.warning("cannot renew object leases at the endpoint daemon: \(error); retrying")
                self.dropClient()
            }
        }
    }

    private func lost(_ id: String, _ error: ErrorMessage) {
        let onLost = self.state.withLockedValue { state in
            state.leases[id] = nil
            state.renewedAt[id] = nil
            return state.onLost
        }
        self.logger.error("lost the lease on object '\(id)': \(error); dropping its activation here")
        onLost?(id)
    }

    private func client() async throws -> EndpointClient {
        if let client = self.state.withLockedValue({ $0.client }), client.isActive { return client }
        guard let daemon = self.daemon else { throw ErrorMessage(code: .unavailable, message: "no endpoint daemon") }
        let client = try await EndpointClient.connect(host: daemon.host, port: daemon.port, logger: self.logger)
        self.state.withLockedValue { $0.client = client }
        return client
    }

    private func dropClient() {
        let client = self.state.withLockedValue { state in
            defer { state.client = nil }
            return state.client
        }
        if let client { Task { await client.close() } }
    }

    /// Closes the daemon connection. Leases still held are not given up: they run out.
    func close() async {
        let client = self.state.withLockedValue { $0.client }
        await client?.close()
    }
}

/// The object is active on another node: call it there.
struct ObjectElsewhere: Error {
    var binding: ObjectBinding
}

extension String {
    fileprivate var objectID: String { String(self.dropFirst("object:".count)) }
}
