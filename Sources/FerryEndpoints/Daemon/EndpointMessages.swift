import FerryPosix
import FerryWire
import NIOCore

/// Where a service can be reached.
public struct ServiceEndpoint: Hashable, Sendable, Codable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` (`[V6]:PORT` for IPv6 literals); port 0 (any free port, for a
    /// listening address) only when `allowingAnyPort`.
    public init?(_ text: String, allowingAnyPort: Bool = false) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            ((allowingAnyPort ? 0 : 1)...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String {
        hostAndPort(self.host, self.port)
    }

    func encode(into payload: inout ByteBuffer) {
        payload.writeWireString(self.host)
        payload.writeInteger(UInt16(clamping: self.port))
    }

    init(from payload: inout ByteBuffer, kind: MessageKind) throws {
        self.host = try payload.readWireString(for: kind, field: "host")
        self.port = Int(try payload.readWireInteger(UInt16.self, for: kind, field: "port"))
    }
}

/// One registration as the daemon holds it: a name, where it is served, what the service says
/// about itself, and the lease that keeps it alive.
public struct EndpointEntry: Hashable, Sendable, Codable {
    public var name: String
    public var endpoints: [ServiceEndpoint]
    public var metadata: [String: String]
    public var leaseID: UInt64
    /// How long the lease has left, in milliseconds, when the answer was made.
    public var remainingMilliseconds: UInt32

    public init(
        name: String,
        endpoints: [ServiceEndpoint],
        metadata: [String: String],
        leaseID: UInt64,
        remainingMilliseconds: UInt32
    ) {
        self.name = name
        self.endpoints = endpoints
        self.metadata = metadata
        self.leaseID = leaseID
        self.remainingMilliseconds = remainingMilliseconds
    }
}

extension EndpointEntry {
    /// The entries as `ferry endpoints lookup` and `ls` print them, a line each: `NAME
    /// HOST:PORT[,...] lease=ID expires-in=S.Ss KEY=VALUE...`, the metadata sorted by key.
    ///
    /// One function for the whole list, so that each entry is read where it lies: a copy of one
    /// (a loop calling a per-entry function) copies its `[String: String]` through that type's
    /// value witness, and the runtime finds the type by name and checks `String: Hashable` by a
    /// scan of every protocol conformance (a quarter of a lookup's CPU time in `perf record`).
    /// Plain loops for the same reason: each generic helper (map, sorted by a closure, joined)
    /// has its type looked up by name at a command's start.
    public static func lines(_ entries: [EndpointEntry]) -> String {
        var lines = ""
        for entry in entries {
            lines += entry.name + " "
            for (index, endpoint) in entry.endpoints.enumerated() {
                lines += (index == 0 ? "" : ",") + endpoint.description
            }
            // Tenths of a second, rounded half up, in integers: `String(format:)` would wake
            // Foundation.
            let tenths = (UInt64(entry.remainingMilliseconds) + 50) / 100
            lines += " lease=\(entry.leaseID) expires-in=\(tenths / 10).\(tenths % 10)s"
            for key in entry.metadata.keys.sorted() { lines += " \(key)=\(entry.metadata[key]!)" }
            lines += "\n"
        }
        return lines
    }
}

/// Limits a daemon's peers must keep to, so one client cannot make it hold or send without bound.
public enum EndpointLimits {
    public static let maxNameBytes = 253
    public static let maxEndpoints = 16
    public static let maxMetadataPairs = 32
    public static let maxMetadataKeyBytes = 64
    public static let maxMetadataValueBytes = 1024
    public static let maxHostBytes = 253
    /// The most entries one answer carries (and the most the table holds).
    public static let maxEntries = 10_000
    public static let minTTLMilliseconds: UInt32 = 200
    public static let maxTTLMilliseconds: UInt32 = 3_600_000
    /// The frame limit the daemon and its clients use.
    public static let maxPayloadLength = 4 * 1024 * 1024
}

/// Registers `name` under a lease of `ttlMilliseconds`; the answer is an ``EndpointLease``.
/// A registration with the same name and endpoints as a live one replaces it.
public struct RegisterRequest: WireMessage, Hashable {
    public static let kind = MessageKind.endpointRegister

    public var name: String
    public var endpoints: [ServiceEndpoint]
    public var metadata: [String: String]
    public var ttlMilliseconds: UInt32

    public init(name: String, endpoints: [ServiceEndpoint], metadata: [String: String] = [:], ttlMilliseconds: UInt32) {
        self.name = name
        self.endpoints = endpoints
        self.metadata = metadata
        self.ttlMilliseconds = ttlMilliseconds
    }

    public init(from payload: inout ByteBuffer) throws {
        self.name = try payload.readWireString(for: Self.kind, field: "name")
        let count = try payload.readWireCount(for: Self.kind, field: "endpoints", limit: EndpointLimits.maxEndpoints)
        self.endpoints = try (0..<count).map { _ in try ServiceEndpoint(from: &payload, kind: Self.kind) }
        self.metadata = try readMetadata(from: &payload, kind: Self.kind)
        self.ttlMilliseconds = try payload.readWireInteger(for: Self.kind, field: "ttl")
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeWireString(self.name)
        payload.writeInteger(UInt16(clamping: self.endpoints.count))
        for endpoint in self.endpoints { endpoint.encode(into: &payload) }
        writeMetadata(self.metadata, into: &payload)
        payload.writeInteger(self.ttlMilliseconds)
    }
}

/// A lease: the answer to register, renew and deregister (with a ttl of 0 once given up).
public struct EndpointLease: WireMessage, Hashable, Codable {
    public static let kind = MessageKind.endpointLease

    public var name: String
    public var leaseID: UInt64
    public var ttlMilliseconds: UInt32

    public init(name: String, leaseID: UInt64, ttlMilliseconds: UInt32) {
        self.name = name
        self.leaseID = leaseID
        self.ttlMilliseconds = ttlMilliseconds
    }

    public init(from payload: inout ByteBuffer) throws {
        self.name = try payload.readWireString(for: Self.kind, field: "name")
        self.leaseID = try payload.readWireInteger(for: Self.kind, field: "leaseID")
        self.ttlMilliseconds = try payload.readWireInteger(for: Self.kind, field: "ttl")
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeWireString(self.name)
        payload.writeInteger(self.leaseID)
        payload.writeInteger(self.ttlMilliseconds)
    }
}

/// A request about one lease: renew it or give it up. Both carry the same two fields.
public protocol LeaseRequest: WireMessage, Hashable {
    var name: String { get }
    var leaseID: UInt64 { get }
    init(name: String, leaseID: UInt64)
}

extension LeaseRequest {
    public init(from payload: inout ByteBuffer) throws {
        self.init(
            name: try payload.readWireString(for: Self.kind, field: "name"),
            leaseID: try payload.readWireInteger(for: Self.kind, field: "leaseID")
        )
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeWireString(self.name)
        payload.writeInteger(self.leaseID)
    }
}

/// Renews the lease `leaseID` on `name` for its full ttl again. A lease the daemon does not hold
/// (it ran out, the daemon restarted, or it was never granted) is answered with `notHeld`; the
/// service then registers again.
public struct RenewRequest: LeaseRequest {
    public static let kind = MessageKind.endpointRenew
    public var name: String
    public var leaseID: UInt64

    public init(name: String, leaseID: UInt64) {
        self.name = name
        self.leaseID = leaseID
    }
}

/// Gives the lease `leaseID` on `name` up; its entry disappears at once.
public struct DeregisterRequest: LeaseRequest {
    public static let kind = MessageKind.endpointDeregister
    public var name: String
    public var leaseID: UInt64

    public init(name: String, leaseID: UInt64) {
        self.name = name
        self.leaseID = leaseID
    }
}

/// Looks `name` up; the answer is ``EndpointEntries``, or `notFound` when nothing is registered.
public struct LookupRequest: WireMessage, Hashable {
    public static let kind = MessageKind.endpointLookup
    public var name: String

    public init(name: String) { self.name = name }
    public init(from payload: inout ByteBuffer) throws {
        self.name = try payload.readWireString(for: Self.kind, field: "name")
    }
    public func encode(into payload: inout ByteBuffer) { payload.writeWireString(self.name) }
}

/// Lists every entry whose name starts with `prefix` (all of them for an empty prefix).
public struct ListRequest: WireMessage, Hashable {
    public static let kind = MessageKind.endpointList
    public var prefix: String

    public init(prefix: String = "") { self.prefix = prefix }
    public init(from payload: inout ByteBuffer) throws {
        self.prefix = try payload.readWireString(for: Self.kind, field: "prefix")
    }
    public func encode(into payload: inout ByteBuffer) { payload.writeWireString(self.prefix) }
}

/// Watches `name`: the daemon answers at once with the current entries (maybe none), then sends
/// the entries again each time they change, every frame flagged `more`, until the connection ends.
public struct WatchRequest: WireMessage, Hashable {
    public static let kind = MessageKind.endpointWatch
    public var name: String

    public init(name: String) { self.name = name }
    public init(from payload: inout ByteBuffer) throws {
        self.name = try payload.readWireString(for: Self.kind, field: "name")
    }
    public func encode(into payload: inout ByteBuffer) { payload.writeWireString(self.name) }
}

/// Entries, with the daemon's table revision when they were read: the answer to lookup, list and
/// watch. A watcher can tell a newer answer by its higher revision.
public struct EndpointEntries: WireMessage, Hashable, Codable {
    public static let kind = MessageKind.endpointEntries

    public var revision: UInt64
    public var entries: [EndpointEntry]

    public init(revision: UInt64, entries: [EndpointEntry]) {
        self.revision = revision
        self.entries = entries
    }

    public init(from payload: inout ByteBuffer) throws {
        self.revision = try payload.readWireInteger(for: Self.kind, field: "revision")
        let count = Int(try payload.readWireInteger(UInt32.self, for: Self.kind, field: "count"))
        guard count <= EndpointLimits.maxEntries else {
            throw FerryWireError.malformedPayload(
                kind: Self.kind,
                reason: "\(count) entries, limit \(EndpointLimits.maxEntries)"
            )
        }
        self.entries = []
        for _ in 0..<count {
            let name = try payload.readWireString(for: Self.kind, field: "name")
            let endpointCount = try payload.readWireCount(
                for: Self.kind,
                field: "endpoints",
                limit: EndpointLimits.maxEndpoints
            )
            let endpoints = try (0..<endpointCount).map { _ in try ServiceEndpoint(from: &payload, kind: Self.kind) }
            let metadata = try readMetadata(from: &payload, kind: Self.kind)
            let leaseID = try payload.readWireInteger(UInt64.self, for: Self.kind, field: "leaseID")
            let remaining = try payload.readWireInteger(UInt32.self, for: Self.kind, field: "remaining")
            self.entries.append(
                EndpointEntry(
                    name: name,
                    endpoints: endpoints,
                    metadata: metadata,
                    leaseID: leaseID,
                    remainingMilliseconds: remaining
                )
            )
        }
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeInteger(self.revision)
        payload.writeInteger(UInt32(self.entries.count))
        for entry in self.entries {
            payload.writeWireString(entry.name)
            payload.writeInteger(UInt16(clamping: entry.endpoints.count))
            for endpoint in entry.endpoints { endpoint.encode(into: &payload) }
            writeMetadata(entry.metadata, into: &payload)
            payload.writeInteger(entry.leaseID)
            payload.writeInteger(entry.remainingMilliseconds)
        }
    }
}

private func writeMetadata(_ metadata: [String: String], into payload: inout ByteBuffer) {
    payload.writeInteger(UInt16(clamping: metadata.count))
    for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
        payload.writeWireString(key)
        payload.writeWireString(value)
    }
}

private func readMetadata(from payload: inout ByteBuffer, kind: MessageKind) throws -> [String: String] {
    let count = try payload.readWireCount(for: kind, field: "metadata", limit: EndpointLimits.maxMetadataPairs)
    var metadata: [String: String] = [:]
    for _ in 0..<count {
        let key = try payload.readWireString(for: kind, field: "metadata key")
        metadata[key] = try payload.readWireString(for: kind, field: "metadata value")
    }
    return metadata
}
