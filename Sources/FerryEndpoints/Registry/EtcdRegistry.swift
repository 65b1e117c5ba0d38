import FerryWire
import Foundation

/// The registry on etcd: each registration is a key `ROOT NAME \0 LEASE` under an etcd lease
/// of its own, whose value holds its endpoints and metadata. Renewing is etcd's keep-alive, giving
/// up is a revoke (the key goes with it), and an exclusive claim or a takeover is one transaction
/// that writes the new key only if no key of the name changed since it was read, so two claimants
/// cannot both win. Etcd's revisions only grow, across member and leader failures.
/// See Docs/etcd-registry-design.md.
public struct EtcdRegistry: Registry {
    public let etcd: EtcdClient
    /// Where the registry's keys live in etcd's key space.
    public let root: String

    public init(_ etcd: EtcdClient, root: String = "/ferry/registry/") {
        self.etcd = etcd
        self.root = root
    }

    /// A value as stored: what a registration says besides its name and lease.
    private struct Stored: Codable {
        var endpoints: [ServiceEndpoint]
        var metadata: [String: String]
        var ttlMilliseconds: UInt32
    }

    public func register(
        _ name: String,
        endpoints: [ServiceEndpoint],
        metadata: [String: String] = [:],
        ttl: Duration
    ) async throws -> EndpointLease {
        let request = RegisterRequest(
            name: name,
            endpoints: endpoints,
            metadata: metadata,
            ttlMilliseconds: UInt32(clamping: ttl.wholeMilliseconds)
        )
        try EndpointTable.validate(request)
        // etcd's leases are whole seconds, at least one.
        let seconds = max(1, (Int64(request.ttlMilliseconds) + 999) / 1000)
        let lease = try await self.etcd.grantLease(ttlSeconds: seconds)
        let ttlMilliseconds = UInt32(clamping: lease.ttlSeconds * 1000)
        let value = try JSONEncoder().encode(
            Stored(endpoints: endpoints, metadata: metadata, ttlMilliseconds: ttlMilliseconds)
        )
        let (start, end) = self.range(of: name)
        let takeover = metadata[EndpointTable.takeoverKey].flatMap { Int64($0) }
        let exclusive = metadata[EndpointTable.exclusiveKey] == "true"
        do {
            // Read, decide as the daemon does, and write only if nothing changed in between.
            var displaced: [EtcdKeyValue] = []
            for _ in 0..<5 {
                let (revision, current) = try await self.etcd.range(start, end: end)
                guard
                    let next = try Self.displaced(
                        from: current,
                        by: lease.id,
                        name: name,
                        endpoints: endpoints,
                        exclusive: exclusive,
                        takeover: takeover
                    )
                else {
                    // The last attempt committed: what it displaced goes now.
                    return try await self.registered(name, lease: lease.id, ttlMilliseconds, displacing: displaced)
                }
                displaced = next
                let committed = try await self.etcd.replace(
                    unchangedSince: revision,
                    from: start,
                    end: end,
                    deleting: displaced.map(\.key),
                    put: self.key(name, lease: lease.id),
                    Array(value),
                    lease: lease.id
                )
                guard committed != nil else { continue }
                return try await self.registered(name, lease: lease.id, ttlMilliseconds, displacing: displaced)
            }
            throw ErrorMessage(
                code: .unavailable,
                message: "'\(name)' kept changing while it was being registered; try again"
            )
        } catch {
            try? await self.etcd.revoke(lease.id)
            throw error
        }
    }

    /// The keys a registration of `endpoints` under `lease` takes the place of: an earlier
    /// registration of the same endpoints, and under an exclusive claim the holder it takes over
    /// (any other holder refuses it). Nil when a key under `lease` is there already: an earlier
    /// attempt of this registration committed although its answer was lost (a member that timed
    /// out after the commit, the same transaction then sent to another), and deleting and writing
    /// that key in one transaction is one etcd refuses.
    static func displaced(
        from current: [EtcdKeyValue],
        by lease: Int64,
        name: String,
        endpoints: [ServiceEndpoint],
        exclusive: Bool,
        takeover: Int64?
    ) throws -> [EtcdKeyValue]? {
        guard !current.contains(where: { $0.lease == lease }) else { return nil }
        var displaced: [EtcdKeyValue] = []
        for held in current {
            guard let stored = try? JSONDecoder().decode(Stored.self, from: Data(held.value)) else { continue }
            if stored.endpoints == endpoints {
                displaced.append(held)  // the same service registering again
            } else if exclusive {
                guard held.lease == takeover else {
                    throw ErrorMessage(
                        code: .held,
                        message:
                            "'\(name)' is held by \(stored.endpoints.map(\.description).joined(separator: ", ")) under lease \(held.lease)"
                    )
                }
                displaced.append(held)
            }
        }
        return displaced
    }

    /// The registration made: those displaced learn it at their next renewal, their leases gone.
    private func registered(
        _ name: String,
        lease: Int64,
        _ ttlMilliseconds: UInt32,
        displacing displaced: [EtcdKeyValue]
    ) async throws -> EndpointLease {
        for held in displaced where held.lease != 0 { try? await self.etcd.revoke(held.lease) }
        return EndpointLease(name: name, leaseID: UInt64(lease), ttlMilliseconds: ttlMilliseconds)
    }

    public func renew(_ lease: EndpointLease, timeout: Duration = .seconds(30)) async throws -> EndpointLease {
        let seconds = try await self.etcd.keepAlive(Int64(bitPattern: lease.leaseID))
        guard seconds > 0 else { throw Self.notHeld(lease) }
        return EndpointLease(
            name: lease.name,
            leaseID: lease.leaseID,
            ttlMilliseconds: UInt32(clamping: seconds * 1000)
        )
    }

    public func deregister(_ lease: EndpointLease) async throws {
        guard try await self.etcd.revoke(Int64(bitPattern: lease.leaseID)) else { throw Self.notHeld(lease) }
    }

    public func lookup(_ name: String) async throws -> [EndpointEntry] {
        let (start, end) = self.range(of: name)
        let entries = try await self.etcd.range(start, end: end).values.compactMap(self.entry)
        guard !entries.isEmpty else {
            throw ErrorMessage(code: .notFound, message: "no service is registered as '\(name)'")
        }
        return entries
    }

    public func list(prefix: String = "") async throws -> [EndpointEntry] {
        try await self.etcd.range(prefix: Array((self.root + prefix).utf8)).values.compactMap(self.entry)
    }

    /// The entries now, then again at each change etcd reports for the name.
    public func watch(_ name: String) -> AsyncThrowingStream<EndpointEntries, any Error> {
        let (start, end) = self.range(of: name)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    var (revision, values) = try await self.etcd.range(start, end: end)
                    continuation.yield(
                        EndpointEntries(revision: UInt64(revision), entries: values.compactMap(self.entry))
                    )
                    for try await _ in self.etcd.watch(start, end: end, after: revision) {
                        (revision, values) = try await self.etcd.range(start, end: end)
                        continuation.yield(
                            EndpointEntries(revision: UInt64(revision), entries: values.compactMap(self.entry))
                        )
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Each call opens its own connection to a member: there is nothing to lose.
    public var isActive: Bool { true }

    public func close() async {}

    // MARK: Keys

    /// The keys of every registration of `name`: `ROOT NAME \0 ...`, up to `ROOT NAME \1`
    /// (names hold no byte below 0x21, so no other name falls between).
    private func range(of name: String) -> (start: [UInt8], end: [UInt8]) {
        let base = Array((self.root + name).utf8)
        return (base + [0], base + [1])
    }

    private func key(_ name: String, lease: Int64) -> [UInt8] {
        let hex = String(UInt64(bitPattern: lease), radix: 16)
        return self.range(of: name).start + Array((String(repeating: "0", count: 16 - hex.count) + hex).utf8)
    }

    private func entry(_ held: EtcdKeyValue) -> EndpointEntry? {
        let key = held.key.dropFirst(self.root.utf8.count)
        guard let separator = key.firstIndex(of: 0),
            let stored = try? JSONDecoder().decode(Stored.self, from: Data(held.value))
        else { return nil }
        return EndpointEntry(
            name: String(decoding: key[..<separator], as: UTF8.self),
            endpoints: stored.endpoints,
            metadata: stored.metadata,
            leaseID: UInt64(bitPattern: held.lease),
            // An upper bound: a range does not say how long a lease has left.
            remainingMilliseconds: stored.ttlMilliseconds
        )
    }

    private static func notHeld(_ lease: EndpointLease) -> ErrorMessage {
        ErrorMessage(
            code: .notHeld,
            message:
                "lease \(lease.leaseID) on '\(lease.name)' is not held: it ran out, was taken over, or was never granted; register again"
        )
    }
}
