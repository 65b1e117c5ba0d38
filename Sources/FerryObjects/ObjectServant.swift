import FerryWire

/// An object as an adapter hosts it: something that runs methods by name. Generated protocols
/// (`<Name>Object`, from WIT) implement ``invoke(_:arguments:)`` for Swift objects; a
/// ``GuestServant`` implements it for a wasm guest. The adapter knows nothing else of it.
public protocol ObjectServant: AnyObject, Sendable {
    /// Runs `method`; `arguments` is a list (positional) or a record (by name).
    func invoke(_ method: String, arguments: ObjectValue) async throws -> ObjectValue
    /// What a persistent object keeps while deactivated, and what moves with it.
    func state() async throws -> [UInt8]
}

extension ObjectServant {
    public func state() async throws -> [UInt8] { [] }
}

/// A kind of object an adapter can activate: objects named `TYPE` or `TYPE/KEY` are made by it.
public struct ObjectType: Sendable {
    public var name: String
    /// Makes the servant for object `id`, from its saved state when it has one.
    public var make: @Sendable (_ id: String, _ state: [UInt8]?) async throws -> any ObjectServant
    /// How to host its objects in a process of their own, for adapters with `segment` isolation.
    public var segmentLauncher: SegmentLauncher?
    /// Whether a call runs on the event loop of the connection it came on, from the frame read
    /// to the answer written, as gRPC C++'s callback API runs a handler on the thread that polled
    /// it: no hop to the cooperative pool and back, which at one caller is most of a small call's
    /// time. Only for methods that neither block nor compute for long, since the loop serves
    /// other connections and services too, and one connection's calls then share one thread.
    public var runsOnEventLoop: Bool

    public init(
        name: String,
        segmentLauncher: SegmentLauncher? = nil,
        runsOnEventLoop: Bool = false,
        make: @escaping @Sendable (_ id: String, _ state: [UInt8]?) async throws -> any ObjectServant
    ) {
        self.name = name
        self.segmentLauncher = segmentLauncher
        self.runsOnEventLoop = runsOnEventLoop
        self.make = make
    }
}

/// How an adapter runs its objects (the seed's activation, threading and isolation policies).
public struct ObjectPolicy: Sendable, Hashable, CustomStringConvertible {
    public enum Activation: String, Sendable, CaseIterable {
        /// Made on first use, dropped when idle; nothing kept.
        case transient
        /// Saved to the store when deactivated and made again from it on demand (virtual objects).
        case persistent
    }

    public enum Threading: String, Sendable, CaseIterable {
        /// One invocation at a time across all the adapter's objects.
        case single
        /// One invocation at a time per object; objects run side by side.
        case perObject
        /// Every invocation runs at once, whatever object it is for.
        case perInvocation
    }

    public enum Isolation: String, Sendable, CaseIterable {
        /// In the node's own address space.
        case shared
        /// In a process of its own, so that its crash touches nothing else.
        case segment
    }

    /// When a persistent object's state is saved.
    public enum Persistence: String, Sendable, CaseIterable {
        /// After every call, before it is answered (group-committed): no acknowledged change is
        /// lost to a crash.
        case writeThrough = "write-through"
        /// Only when the object is deactivated: cheaper, but a crash loses every change since
        /// its activation, though each call was answered.
        case onDeactivate = "on-deactivate"
    }

    public var activation: Activation
    public var threading: Threading
    public var isolation: Isolation
    public var persistence: Persistence
    /// An object without calls for this long is deactivated.
    public var idleTimeout: Duration
    /// The most objects active at once; past it, the least recently used idle one goes.
    public var maxActive: Int

    public init(
        activation: Activation = .transient,
        threading: Threading = .perObject,
        isolation: Isolation = .shared,
        idleTimeout: Duration = .seconds(300),
        maxActive: Int = 100_000,
        persistence: Persistence = .writeThrough
    ) {
        self.persistence = persistence
        self.activation = activation
        self.threading = threading
        self.isolation = isolation
        self.idleTimeout = idleTimeout
        self.maxActive = maxActive
    }

    public var description: String {
        let saves = self.activation == .persistent && self.persistence == .onDeactivate ? " on-deactivate" : ""
        return "\(self.activation) \(self.threading) \(self.isolation)\(saves)"
    }

    /// Whether each call's changes are saved before it is answered.
    var writesThrough: Bool { self.activation == .persistent && self.persistence == .writeThrough }
}
