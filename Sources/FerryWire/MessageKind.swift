/// What a frame's payload is. Open-ended: later layers add kinds, and a peer that receives a kind
/// it does not know answers with ``ErrorMessage/Code/unknownKind`` instead of dropping the connection.
public struct MessageKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// An error answer; the payload is an ``ErrorMessage``.
    public static let error = MessageKind(rawValue: 0x01)
    /// A liveness probe; the payload is echoed back.
    public static let ping = MessageKind(rawValue: 0x02)
    /// The answer to a ping.
    public static let pong = MessageKind(rawValue: 0x03)
    /// Cancel a request in progress on a server; the payload is a ``CancelRequest``.
    public static let cancel = MessageKind(rawValue: 0x10)
    /// The answer to a cancel; the payload is a ``CancelResult``.
    public static let cancelResult = MessageKind(rawValue: 0x11)
    /// Ask a server for its counters; empty payload.
    public static let stats = MessageKind(rawValue: 0x12)
    /// The answer to ``stats``; the payload is a ``ServerStats``.
    public static let statsResult = MessageKind(rawValue: 0x13)

    // The endpoint daemon (FerryEndpoints).
    /// Register a service under a lease.
    public static let endpointRegister = MessageKind(rawValue: 0x20)
    /// The lease granted to a registration.
    public static let endpointLease = MessageKind(rawValue: 0x21)
    /// Renew a lease.
    public static let endpointRenew = MessageKind(rawValue: 0x22)
    /// Give a lease up before it runs out.
    public static let endpointDeregister = MessageKind(rawValue: 0x23)
    /// Look one name up.
    public static let endpointLookup = MessageKind(rawValue: 0x24)
    /// List every name.
    public static let endpointList = MessageKind(rawValue: 0x25)
    /// Watch one name: the answer is a stream of entries, one frame per change.
    public static let endpointWatch = MessageKind(rawValue: 0x26)
    /// Registrations: the answer to lookup, list and watch.
    public static let endpointEntries = MessageKind(rawValue: 0x27)

    // The key-value service (FerryServer).
    /// Read one key.
    public static let kvGet = MessageKind(rawValue: 0x30)
    /// A key's value, or its absence.
    public static let kvValue = MessageKind(rawValue: 0x31)
    /// Write, delete or compare-and-set one key.
    public static let kvWrite = MessageKind(rawValue: 0x32)
    /// Whether a write was applied; sent only once it is durable.
    public static let kvWritten = MessageKind(rawValue: 0x33)
    /// List keys by prefix.
    public static let kvList = MessageKind(rawValue: 0x34)
    /// Keys and values: the answer to a list.
    public static let kvEntries = MessageKind(rawValue: 0x35)

    // Object servers (FerryObjects) and their clients (FerryClient).
    /// Invoke a method of an object.
    public static let objectCall = MessageKind(rawValue: 0x40)
    /// A method's result, or a forward to where the object went.
    public static let objectResult = MessageKind(rawValue: 0x41)
    /// Move an active object to another node.
    public static let objectRelocate = MessageKind(rawValue: 0x42)
    /// Node to node: take over an object being moved.
    public static let objectAdopt = MessageKind(rawValue: 0x43)
    /// List a node's objects.
    public static let objectList = MessageKind(rawValue: 0x44)
    /// A node's objects: the answer to a list.
    public static let objectListing = MessageKind(rawValue: 0x45)

    // Nodes and their processes (FerryMigration, FerryNode).
    /// A request to a node: spawn, list, wait, kill, logs, migrate, evaluate, code; JSON.
    public static let nodeRequest = MessageKind(rawValue: 0x50)
    /// A node's answer; JSON. Streams (logs, wait, a move's progress) send several.
    public static let nodeReply = MessageKind(rawValue: 0x51)

    public var description: String {
        switch self {
        case .error: "error"
        case .ping: "ping"
        case .pong: "pong"
        case .cancel: "cancel"
        case .cancelResult: "cancel-result"
        case .stats: "stats"
        case .statsResult: "stats-result"
        case .endpointRegister: "endpoint-register"
        case .endpointLease: "endpoint-lease"
        case .endpointRenew: "endpoint-renew"
        case .endpointDeregister: "endpoint-deregister"
        case .endpointLookup: "endpoint-lookup"
        case .endpointList: "endpoint-list"
        case .endpointWatch: "endpoint-watch"
        case .endpointEntries: "endpoint-entries"
        case .kvGet: "kv-get"
        case .kvValue: "kv-value"
        case .kvWrite: "kv-write"
        case .kvWritten: "kv-written"
        case .kvList: "kv-list"
        case .kvEntries: "kv-entries"
        case .objectCall: "object-call"
        case .objectResult: "object-result"
        case .objectRelocate: "object-relocate"
        case .objectAdopt: "object-adopt"
        case .objectList: "object-list"
        case .objectListing: "object-listing"
        case .nodeRequest: "node-request"
        case .nodeReply: "node-reply"
        default: "kind 0x" + String(self.rawValue, radix: 16)
        }
    }
}
