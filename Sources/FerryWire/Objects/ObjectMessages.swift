import FerryPosix
import NIOCore

/// Limits object peers keep to.
public enum ObjectLimits {
    /// The frame limit object servers and clients use.
    public static let maxPayloadLength = 1 << 20
    /// The most argument bytes one call may carry; a bigger call is refused with `tooLarge`.
    public static let maxArgumentBytes = 64 * 1024
    /// The most bytes a result may take; a bigger one is answered with `tooLarge` instead.
    public static let maxResultBytes = maxPayloadLength - 4096
    /// The most bytes a name (object, method) may take.
    public static let maxNameBytes = 253
    /// The longest deadline a call may have: below how long a node remembers the answers of
    /// calls that ran (2 minutes), so that a retry within a call's deadline never runs it again.
    public static let maxCallDeadline = Duration.seconds(100)
}

/// Where one activation of an object lives: its node, and the epoch of that activation. The
/// epoch grows with every activation and move, so a binding that names an older one is stale.
public struct ObjectBinding: Hashable, Sendable, Codable, CustomStringConvertible {
    public var object: String
    public var host: String
    public var port: Int
    public var epoch: UInt64

    public init(object: String, host: String, port: Int, epoch: UInt64) {
        self.object = object
        self.host = host
        self.port = port
        self.epoch = epoch
    }

    public var node: String { hostAndPort(self.host, self.port) }
    public var description: String { "\(self.object)@\(self.node) epoch \(self.epoch)" }

    func encode(into payload: inout ByteBuffer) {
        payload.writeWireString(self.object)
        payload.writeWireString(self.host)
        payload.writeInteger(UInt16(clamping: self.port))
        payload.writeInteger(self.epoch)
    }

    init(from payload: inout ByteBuffer, kind: MessageKind) throws {
        self.object = try payload.readWireString(for: kind, field: "object")
        self.host = try payload.readWireString(for: kind, field: "host")
        self.port = Int(try payload.readWireInteger(UInt16.self, for: kind, field: "port"))
        self.epoch = try payload.readWireInteger(for: kind, field: "epoch")
    }
}

/// Names one call across retries: the calling client and its own sequence number. A server that
/// sees the same id again answers with the first execution's result instead of running it again,
/// which makes every call at-most-once.
public struct CallID: Hashable, Sendable, CustomStringConvertible {
    public var client: UInt64
    public var sequence: UInt64

    public init(client: UInt64, sequence: UInt64) {
        self.client = client
        self.sequence = sequence
    }

    public var description: String { "\(String(self.client, radix: 16))-\(self.sequence)" }
}

/// Invokes `method` of `object`; the answer is an ``ObjectResult`` or an ``ErrorMessage``.
public struct ObjectCall: WireMessage, Hashable {
    public static let kind = MessageKind.objectCall

    public var object: String
    public var method: String
    /// The activation the caller is bound to; 0 when it has no binding yet.
    public var epoch: UInt64
    public var callID: CallID
    /// How long the caller still waits, in milliseconds; a call that cannot start by then is
    /// not started.
    public var deadlineMilliseconds: UInt32
    /// Positional (a list) or by name (a record).
    public var arguments: ObjectValue

    public init(
        object: String,
        method: String,
        epoch: UInt64 = 0,
        callID: CallID,
        deadlineMilliseconds: UInt32,
        arguments: ObjectValue
    ) {
        self.object = object
        self.method = method
        self.epoch = epoch
        self.callID = callID
        self.deadlineMilliseconds = deadlineMilliseconds
        self.arguments = arguments
    }

    public init(from payload: inout ByteBuffer) throws {
        self.object = try payload.readWireString(for: Self.kind, field: "object")
        self.method = try payload.readWireString(for: Self.kind, field: "method")
        for (what, name) in [("object name", self.object), ("method name", self.method)]
        where name.utf8.count > ObjectLimits.maxNameBytes {
            throw ErrorMessage(
                code: .tooLarge,
                message:
                    "the \(what) '\(name.prefix(40))...' takes \(name.utf8.count) bytes; the limit is \(ObjectLimits.maxNameBytes)"
            )
        }
        self.epoch = try payload.readWireInteger(for: Self.kind, field: "epoch")
        self.callID = CallID(
            client: try payload.readWireInteger(for: Self.kind, field: "client"),
            sequence: try payload.readWireInteger(for: Self.kind, field: "sequence")
        )
        self.deadlineMilliseconds = try payload.readWireInteger(for: Self.kind, field: "deadline")
        guard payload.readableBytes <= ObjectLimits.maxArgumentBytes else {
            throw ErrorMessage(
                code: .tooLarge,
                message:
                    "the arguments of \(self.object).\(self.method) take \(payload.readableBytes) bytes; the limit is \(ObjectLimits.maxArgumentBytes)"
            )
        }
        self.arguments = try ObjectValue(from: &payload, kind: Self.kind)
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeWireString(self.object)
        payload.writeWireString(self.method)
        payload.writeInteger(self.epoch)
        payload.writeInteger(self.callID.client)
        payload.writeInteger(self.callID.sequence)
        payload.writeInteger(self.deadlineMilliseconds)
        self.arguments.encode(into: &payload)
    }
}

/// The answer to an ``ObjectCall`` (a result, or where the object went) and to
/// ``ObjectRelocate`` and ``ObjectAdopt`` (the new binding).
public struct ObjectResult: WireMessage, Hashable {
    public static let kind = MessageKind.objectResult

    public enum Outcome: Hashable, Sendable {
        /// The method ran, at the activation with this epoch.
        case value(ObjectValue, epoch: UInt64)
        /// The object is not here (any more): call it at this binding.
        case forward(ObjectBinding)
    }

    public var outcome: Outcome

    public init(_ outcome: Outcome) { self.outcome = outcome }

    public init(from payload: inout ByteBuffer) throws {
        switch try payload.readWireInteger(UInt8.self, for: Self.kind, field: "outcome") {
        case 0:
            let epoch: UInt64 = try payload.readWireInteger(for: Self.kind, field: "epoch")
            self.outcome = .value(try ObjectValue(from: &payload, kind: Self.kind), epoch: epoch)
        case 1:
            self.outcome = .forward(try ObjectBinding(from: &payload, kind: Self.kind))
        case let other:
            throw FerryWireError.malformedPayload(kind: Self.kind, reason: "unknown outcome \(other)")
        }
    }

    public func encode(into payload: inout ByteBuffer) {
        switch self.outcome {
        case .value(let value, let epoch):
            payload.writeInteger(UInt8(0))
            payload.writeInteger(epoch)
            value.encode(into: &payload)
        case .forward(let binding):
            payload.writeInteger(UInt8(1))
            binding.encode(into: &payload)
        }
    }
}

/// Asks the node that has `object` active to move it to the node at `host:port`: calls in flight
/// finish, the state moves, and later calls are forwarded. The answer is an ``ObjectResult``
/// holding the new binding.
public struct ObjectRelocate: WireMessage, Hashable {
    public static let kind = MessageKind.objectRelocate

    public var object: String
    public var host: String
    public var port: Int

    public init(object: String, host: String, port: Int) {
        self.object = object
        self.host = host
        self.port = port
    }

    public init(from payload: inout ByteBuffer) throws {
        self.object = try payload.readWireString(for: Self.kind, field: "object")
        self.host = try payload.readWireString(for: Self.kind, field: "host")
        self.port = Int(try payload.readWireInteger(UInt16.self, for: Self.kind, field: "port"))
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeWireString(self.object)
        payload.writeWireString(self.host)
        payload.writeInteger(UInt16(clamping: self.port))
    }
}

/// Node to node, during a move: activate `object` here with `state`, taking over the naming
/// lease `fromLease` of the node it leaves. The answer is an ``ObjectResult`` with the binding.
public struct ObjectAdopt: WireMessage, Hashable {
    public static let kind = MessageKind.objectAdopt

    public var object: String
    public var state: [UInt8]?
    public var fromLease: UInt64

    public init(object: String, state: [UInt8]?, fromLease: UInt64) {
        self.object = object
        self.state = state
        self.fromLease = fromLease
    }

    public init(from payload: inout ByteBuffer) throws {
        self.object = try payload.readWireString(for: Self.kind, field: "object")
        self.fromLease = try payload.readWireInteger(for: Self.kind, field: "lease")
        let hasState = try payload.readWireInteger(UInt8.self, for: Self.kind, field: "hasState")
        self.state = hasState == 1 ? try payload.readWireBytes(for: Self.kind, field: "state") : nil
    }

    public func encode(into payload: inout ByteBuffer) {
        payload.writeWireString(self.object)
        payload.writeInteger(self.fromLease)
        if let state = self.state {
            payload.writeInteger(UInt8(1))
            payload.writeWireBytes(state)
        } else {
            payload.writeInteger(UInt8(0))
        }
    }
}

/// Asks a node for the objects it hosts; empty. The answer is an ``ObjectListing``.
public struct ObjectList: WireMessage, Hashable {
    public static let kind = MessageKind.objectList
    public init() {}
    public init(from payload: inout ByteBuffer) throws {}
    public func encode(into payload: inout ByteBuffer) {}
}

/// One object as its node sees it.
public struct ObjectStatus: Hashable, Sendable, Codable {
    public var object: String
    public var type: String
    public var adapter: String
    /// The adapter's policy, e.g. `persistent perObject shared`.
    public var policy: String
    public var node: String
    public var epoch: UInt64
    /// `active`, `stored` (persistent, not active now) or `moved` (forwarded).
    public var state: String
    public var calls: UInt64

    public init(
        object: String,
        type: String,
        adapter: String,
        policy: String,
        node: String,
        epoch: UInt64,
        state: String,
        calls: UInt64
    ) {
        self.object = object
        self.type = type
        self.adapter = adapter
        self.policy = policy
        self.node = node
        self.epoch = epoch
        self.state = state
        self.calls = calls
    }
}

/// The answer to ``ObjectList``.
public struct ObjectListing: WireMessage, Hashable {
    public static let kind = MessageKind.objectListing
    public static let maxEntries = 10_000

    public var objects: [ObjectStatus]

    public init(objects: [ObjectStatus]) { self.objects = objects }

    public init(from payload: inout ByteBuffer) throws {
        let count = try payload.readWireCount(for: Self.kind, field: "objects", limit: Self.maxEntries)
        self.objects = try (0..<count).map { _ in
            ObjectStatus(
                object: try payload.readWireString(for: Self.kind, field: "object"),
                type: try payload.readWireString(for: Self.kind, field: "type"),
                adapter: try payload.readWireString(for: Self.kind, field: "adapter"),
                policy: try payload.readWireString(for: Self.kind, field: "policy"),
                node: try payload.readWireString(for: Self.kind, field: "node"),
                epoch: try payload.readWireInteger(for: Self.kind, field: "epoch"),
                state: try payload.readWireString(for: Self.kind, field: "state"),
                calls: try payload.readWireInteger(for: Self.kind, field: "calls")
            )
        }
    }

    public func encode(into payload: inout ByteBuffer) {
        let objects = self.objects.prefix(Self.maxEntries)
        payload.writeInteger(UInt16(objects.count))
        for status in objects {
            payload.writeWireString(status.object)
            payload.writeWireString(status.type)
            payload.writeWireString(status.adapter)
            payload.writeWireString(status.policy)
            payload.writeWireString(status.node)
            payload.writeInteger(status.epoch)
            payload.writeWireString(status.state)
            payload.writeInteger(status.calls)
        }
    }
}

/// How objects are named, at nodes and at the endpoint daemon. One place, for servers and clients.
public enum ObjectNames {
    /// The daemon name an active persistent object is claimed under.
    public static func claim(_ id: String) -> String { "object:\(id)" }
    /// The object id of a claim name.
    public static func id(ofClaim name: String) -> String { String(name.dropFirst("object:".count)) }
    /// The daemon name under which every node that hosts a type registers.
    public static func hosts(_ type: some StringProtocol) -> String { "objects:\(type)" }
    /// The daemon name under which every object node registers.
    public static let nodes = "object-nodes"
    /// The type part of an object id: `counter` for `counter` and `counter/7`.
    public static func type(of id: String) -> Substring {
        id.firstIndex(of: "/").map { id[..<$0] } ?? id[...]
    }
}
