/// What a node lends the guests it runs, through the `ferry` host API: its name, and its own
/// key space. A guest that moves is bound by type to the same facilities of the node it arrives
/// at (the seed's fixed resources, re-bound on arrival).
public protocol GuestNodeServices: Sendable {
    /// The node's name in its cluster (`ferry.node_name`).
    var nodeName: String { get }
    /// A value of the node-local key space (`ferry.local_get`), nil when missing.
    func localGet(_ key: String) -> [UInt8]?
    /// Stores into the node-local key space (`ferry.local_put`).
    func localPut(_ key: String, _ value: [UInt8]) throws
}
