import FerryWire

/// The endpoint daemon's table: names to leased registrations. Soft state — nothing is written
/// down; an entry lives only while its service keeps renewing the lease, and a daemon that
/// restarts starts empty and refills as services renew, find their lease gone, and register again.
///
/// A value type with time passed in (monotonic nanoseconds), so every rule here is tested without
/// sockets or clocks.
public struct EndpointTable: Sendable {
    struct Stored: Sendable {
        var endpoints: [ServiceEndpoint]
        var metadata: [String: String]
        var ttlNanoseconds: UInt64
        var expiresAt: UInt64
    }

    private var names: [String: [UInt64: Stored]] = [:]
    private var count = 0
    private var lastLeaseID: UInt64
    /// Bumped on every change; answers carry it so watchers can order them.
    public private(set) var revision: UInt64 = 0

    /// - Parameter firstLeaseID: where lease ids start. A daemon starts at a random point so that
    ///   a lease granted before a restart is not mistaken for one granted after it.
    public init(firstLeaseID: UInt64 = UInt64.random(in: 1...(UInt64.max >> 1))) {
        self.lastLeaseID = firstLeaseID
    }

    /// Registers, or replaces the live registration of the same name and endpoints.
    public mutating func register(_ request: RegisterRequest, now: UInt64) throws -> EndpointLease {
        try Self.validate(request)
        let ttl = min(
            max(request.ttlMilliseconds, EndpointLimits.minTTLMilliseconds),
            EndpointLimits.maxTTLMilliseconds
        )
        var leases = self.names[request.name, default: [:]]
        if request.metadata[Self.exclusiveKey] == "true" {
            try Self.claimExclusively(request, leases: &leases, count: &self.count, now: now)
        }
        if let replaced = leases.first(where: { $0.value.endpoints == request.endpoints })?.key {
            leases[replaced] = nil
            self.count -= 1
        }
        guard self.count < EndpointLimits.maxEntries else {
            throw ErrorMessage(
                code: .unavailable,
                message: "the endpoint table is full (\(EndpointLimits.maxEntries) registrations); try again later"
            )
        }
        self.lastLeaseID &+= 1
        let ttlNanoseconds = UInt64(ttl) * 1_000_000
        leases[self.lastLeaseID] = Stored(
            endpoints: request.endpoints,
            metadata: request.metadata,
            ttlNanoseconds: ttlNanoseconds,
            expiresAt: now + ttlNanoseconds
        )
        self.names[request.name] = leases
        self.count += 1
        self.revision += 1
        return EndpointLease(name: request.name, leaseID: self.lastLeaseID, ttlMilliseconds: ttl)
    }

    /// Metadata that makes a registration exclusive: it is refused (``ErrorMessage/Code/held``)
    /// while another live registration of the name, at other endpoints, exists. This is the
    /// directory that keeps a persistent object active on one node at a time.
    public static let exclusiveKey = "ferry.exclusive"
    /// With ``exclusiveKey``: the lease id of the holder this registration replaces at once (a
    /// move hands the name from one node to the next without a gap).
    public static let takeoverKey = "ferry.takeover"

    private static func claimExclusively(
        _ request: RegisterRequest,
        leases: inout [UInt64: Stored],
        count: inout Int,
        now: UInt64
    ) throws {
        let takeover = request.metadata[Self.takeoverKey].flatMap { UInt64($0) }
        for (leaseID, stored) in leases where stored.endpoints != request.endpoints && stored.expiresAt > now {
            guard leaseID == takeover else {
                throw ErrorMessage(
                    code: .held,
                    message:
                        "'\(request.name)' is held by \(stored.endpoints.map(\.description).joined(separator: ", ")) under lease \(leaseID) for \((stored.expiresAt - now) / 1_000_000) ms more"
                )
            }
        }
        // The holder handed over, or every other holder's lease ran out: the name is this one's.
        for (leaseID, stored) in leases where stored.endpoints != request.endpoints {
            leases[leaseID] = nil
            count -= 1
        }
    }

    /// Extends a lease by its full ttl.
    public mutating func renew(name: String, leaseID: UInt64, now: UInt64) throws -> EndpointLease {
        guard var stored = self.names[name]?[leaseID], stored.expiresAt > now else {
            throw Self.notHeld(name: name, leaseID: leaseID)
        }
        stored.expiresAt = now + stored.ttlNanoseconds
        self.names[name]![leaseID] = stored
        return EndpointLease(name: name, leaseID: leaseID, ttlMilliseconds: UInt32(stored.ttlNanoseconds / 1_000_000))
    }

    /// Whether lease `leaseID` on `name` is an exclusive registration.
    public func isExclusive(name: String, leaseID: UInt64) -> Bool {
        self.names[name]?[leaseID]?.metadata[Self.exclusiveKey] == "true"
    }

    /// Removes a registration before its lease runs out.
    public mutating func deregister(name: String, leaseID: UInt64) throws -> EndpointLease {
        guard self.names[name]?[leaseID] != nil else { throw Self.notHeld(name: name, leaseID: leaseID) }
        self.remove(name: name, leaseID: leaseID)
        return EndpointLease(name: name, leaseID: leaseID, ttlMilliseconds: 0)
    }

    /// The live registrations of `name`, oldest lease first.
    public func entries(named name: String, now: UInt64) -> [EndpointEntry] {
        guard let leases = self.names[name] else { return [] }
        return leases.sorted { $0.key < $1.key }.compactMap { leaseID, stored in
            Self.entry(name: name, leaseID: leaseID, stored: stored, now: now)
        }
    }

    /// Every live registration whose name starts with `prefix`, by name.
    public func entries(prefix: String, now: UInt64) -> [EndpointEntry] {
        self.names.keys.filter { $0.hasPrefix(prefix) }.sorted().flatMap { self.entries(named: $0, now: now) }
    }

    /// Drops every registration whose lease has run out, and returns the names that changed.
    public mutating func expire(now: UInt64) -> Set<String> {
        var changed: Set<String> = []
        for (name, leases) in self.names {
            for (leaseID, stored) in leases where stored.expiresAt <= now {
                self.remove(name: name, leaseID: leaseID)
                changed.insert(name)
            }
        }
        return changed
    }

    /// How many registrations are live or not yet swept.
    public var registrationCount: Int { self.count }

    private mutating func remove(name: String, leaseID: UInt64) {
        self.names[name]?[leaseID] = nil
        if self.names[name]?.isEmpty == true { self.names[name] = nil }
        self.count -= 1
        self.revision += 1
    }

    private static func entry(name: String, leaseID: UInt64, stored: Stored, now: UInt64) -> EndpointEntry? {
        guard stored.expiresAt > now else { return nil }
        return EndpointEntry(
            name: name,
            endpoints: stored.endpoints,
            metadata: stored.metadata,
            leaseID: leaseID,
            remainingMilliseconds: UInt32(clamping: (stored.expiresAt - now) / 1_000_000)
        )
    }

    private static func notHeld(name: String, leaseID: UInt64) -> ErrorMessage {
        ErrorMessage(
            code: .notHeld,
            message:
                "lease \(leaseID) on '\(name)' is not held: it ran out, the daemon restarted, or it was never granted; register again"
        )
    }

    /// Refuses names, endpoints and metadata a peer should not make the daemon hold.
    static func validate(_ request: RegisterRequest) throws {
        try validateName(request.name)
        guard !request.endpoints.isEmpty else {
            throw ErrorMessage(code: .malformed, message: "registration of '\(request.name)' names no endpoint")
        }
        for endpoint in request.endpoints {
            guard !endpoint.host.isEmpty, endpoint.host.utf8.count <= EndpointLimits.maxHostBytes,
                (1...65535).contains(endpoint.port)
            else {
                throw ErrorMessage(
                    code: .malformed,
                    message: "endpoint '\(endpoint)' of '\(request.name)' is not a host and a port in 1...65535"
                )
            }
        }
        for (key, value) in request.metadata {
            guard key.utf8.count <= EndpointLimits.maxMetadataKeyBytes,
                value.utf8.count <= EndpointLimits.maxMetadataValueBytes
            else {
                throw ErrorMessage(
                    code: .tooLarge,
                    message:
                        "metadata '\(key.prefix(40))' of '\(request.name)' is too long: keys take at most \(EndpointLimits.maxMetadataKeyBytes) bytes, values \(EndpointLimits.maxMetadataValueBytes)"
                )
            }
        }
    }

    /// A name is 1 to 253 bytes of printable characters without spaces.
    public static func validateName(_ name: String) throws {
        guard name.utf8.count <= EndpointLimits.maxNameBytes else {
            throw ErrorMessage(
                code: .tooLarge,
                message:
                    "service name of \(name.utf8.count) bytes is too long (limit \(EndpointLimits.maxNameBytes)): '\(name.prefix(40))...'"
            )
        }
        guard !name.isEmpty, name.unicodeScalars.allSatisfy({ !$0.properties.isWhitespace && $0.value >= 0x21 }) else {
            throw ErrorMessage(
                code: .malformed,
                message: "service name '\(name)' must be non-empty, without spaces or control characters"
            )
        }
    }
}
