/// What a node lends the guests it runs, through the `ferry` host API: its name, its own key
/// space and data sets, the cluster's key-value service, and connections to other hosts. A guest that moves is
/// bound to these as the seed's table says: the node's own facilities by type (it sees the new
/// node's), the cluster's by identifier (found again by name), connections re-established to
/// the same address.
///
/// Each call comes on the guest's own kernel thread and may block it, as a system call would.
public protocol GuestNodeServices: Sendable {
    /// The node's name in its cluster (`ferry.node_name`).
    var nodeName: String { get }
    /// A value of the node-local key space (`ferry.local_get`), nil when missing.
    func localGet(_ key: String) -> [UInt8]?
    /// Stores into the node-local key space (`ferry.local_put`).
    func localPut(_ key: String, _ value: [UInt8]) throws
    /// A key of the cluster's key-value service (`ferry.kv_get`), nil when missing.
    func kvGet(_ key: String) throws -> [UInt8]?
    /// Stores a key of the cluster's key-value service, durably (`ferry.kv_put`).
    func kvPut(_ key: String, _ value: [UInt8]) throws
    /// Opens a TCP connection to `address` (`HOST:PORT`); its handle (`ferry.connect`).
    func connect(_ address: String) throws -> Int32
    /// Sends bytes on a connection; how many went (`ferry.conn_send`).
    func send(_ handle: Int32, _ bytes: [UInt8]) throws -> Int
    /// Receives up to `capacity` bytes; empty at the end of the stream (`ferry.conn_recv`).
    func receive(_ handle: Int32, capacity: Int) throws -> [UInt8]
    /// Closes a connection (`ferry.conn_close`).
    func close(_ handle: Int32)
    /// Up to `capacity` bytes of the node's data set `name` from `offset` (`ferry.data_read`):
    /// empty past its end, nil when the node has no data set of that name.
    func dataRead(_ name: String, offset: Int, capacity: Int) -> [UInt8]?
}

/// What a guest asked for that its host does not lend it.
public struct GuestServiceUnavailable: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension GuestNodeServices {
    public func kvGet(_ key: String) throws -> [UInt8]? { throw GuestServiceUnavailable("no key-value service here") }
    public func kvPut(_ key: String, _ value: [UInt8]) throws {
        throw GuestServiceUnavailable("no key-value service here")
    }
    public func connect(_ address: String) throws -> Int32 { throw GuestServiceUnavailable("no connections here") }
    public func send(_ handle: Int32, _ bytes: [UInt8]) throws -> Int {
        throw GuestServiceUnavailable("no connections here")
    }
    public func receive(_ handle: Int32, capacity: Int) throws -> [UInt8] {
        throw GuestServiceUnavailable("no connections here")
    }
    public func close(_ handle: Int32) {}
    public func dataRead(_ name: String, offset: Int, capacity: Int) -> [UInt8]? { nil }
}
