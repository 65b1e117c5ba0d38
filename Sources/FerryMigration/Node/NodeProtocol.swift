import FerryWire
import Foundation
import NIOCore

/// What clients and other nodes ask a node, over FerryWire (`node-request`, JSON).
public enum NodeRequest: Codable, Sendable, Equatable {
    /// Start a process; its module travels only when the node lacks it (the answer to a
    /// request without code, for a digest the node does not hold, is `needCode`).
    case spawn(ProcessSpec, code: Data?)
    /// Start a native program in a container (`ferry spawn --container`).
    case spawnContainer(ContainerRequest)
    /// A container moving here (weakly): start it on its writable layer (a tar archive), taking
    /// over its claim from the lease `sourceLease` of the node it leaves.
    case adoptContainer(ContainerRequest, upper: Data, sourceLease: UInt64)
    /// The node's processes.
    case list
    /// Wait for a process to end: streams nothing until it does; answers `moved` when it went
    /// to another node meanwhile.
    case wait(String)
    case kill(String)
    /// A process's output from `offset`; with `follow`, a stream of it as it comes.
    case logs(String, offset: Int, follow: Bool)
    /// Move a process from this node to `to`.
    case migrate(String, to: String, mode: MoveMode, limits: MoveLimits = MoveLimits())
    /// Receiver-initiated: ask the node holding `name` (or, with nil, the most loaded node) to
    /// send a process here.
    case pull(String?, mode: MoveMode)
    /// Remote evaluation: run an export of a module here, against this node's resources, and
    /// answer its result.
    case evaluate(ProcessSpec, code: Data?)
    /// Code on demand: the module `digest`, if this node holds it.
    case code(String)
    /// A process's resources and how each is bound.
    case resources(String)
    /// Client–server: post `message` to the process's mailbox and answer the next message it
    /// sends (`answer`), or where it went (`moved`) when it left before the call went in.
    case call(String, message: Data)
    /// The answer kept here under `ticket` for a call that was waiting at another node when the
    /// process moved (`answer`), or where the process went from here (`moved`).
    case keptAnswer(String, ticket: UInt64)
    /// Whether this node runs `name` now (asked when a move's outcome is in doubt).
    case holds(String)
    /// Stores `bytes` as the node's data set `name` (`ferry data load`), for its guests to read
    /// with `ferry.data_read`.
    case loadData(name: String, bytes: Data)
    /// The node's load now (what it publishes every second, fresh).
    case load
    /// Receiver-initiated balancing: the node `to`, whose load is `load`, asks for work; this node
    /// sends it the process whose move pays best (answers `report`), or says why none
    /// (`declined`).
    case giveWork(to: String, load: NodeLoad)
    /// The files of a read-only layer this node lent a process that moved away: the node it went
    /// to copies it on first use.
    case layer(id: String)
}

/// A node's answers (`node-reply`, JSON).
public enum NodeReply: Codable, Sendable, Equatable {
    case spawned(ProcessSummary)
    case processes([ProcessSummary])
    /// The node has no module with this digest: send it.
    case needCode(String)
    case finished(ProcessOutcome)
    /// The process is on another node now.
    case moved(to: String)
    case killed
    case output(Data, next: Int, ended: Bool)
    /// A process's answer to a call.
    case answer(Data)
    case progress(sent: Int, total: Int)
    case report(MoveReport)
    case code(Data)
    case resources([ResourceBinding])
    case holds(Bool)
    case layer(Data)
    case load(NodeLoad)
    /// A data set was stored: its size.
    case dataLoaded(bytes: Int)
    /// No process moves, and why.
    case declined(String)
}

/// A resource of a process, and how it is bound to it and to its node (the seed's table).
public struct ResourceBinding: Codable, Sendable, Equatable {
    /// What it is: `file layer`, `lower layer`, `kv key`, `node-local key space`, `clock`,
    /// `log`, `connection`.
    public var kind: String
    /// Which one: a path, a key, an address.
    public var identifier: String
    /// Process to resource: `by identifier`, `by value` or `by type`.
    public var processBinding: String
    /// Resource to machine: `unattached`, `fastened` or `fixed`.
    public var machineBinding: String
    /// What a move does with it.
    public var onMove: String

    public init(kind: String, identifier: String, processBinding: String, machineBinding: String, onMove: String) {
        self.kind = kind
        self.identifier = identifier
        self.processBinding = processBinding
        self.machineBinding = machineBinding
        self.onMove = onMove
    }
}

/// The FerryWire envelope of a ``NodeRequest``.
public struct NodeRequestMessage: WireMessage {
    public static let kind = MessageKind.nodeRequest
    public var request: NodeRequest

    public init(_ request: NodeRequest) { self.request = request }

    public init(from payload: inout ByteBuffer) throws {
        self.request = try NodeJSON.decode(NodeRequest.self, from: &payload, kind: Self.kind)
    }

    public func encode(into payload: inout ByteBuffer) { NodeJSON.encode(self.request, into: &payload) }
}

/// The FerryWire envelope of a ``NodeReply``.
public struct NodeReplyMessage: WireMessage {
    public static let kind = MessageKind.nodeReply
    public var reply: NodeReply

    public init(_ reply: NodeReply) { self.reply = reply }

    public init(from payload: inout ByteBuffer) throws {
        self.reply = try NodeJSON.decode(NodeReply.self, from: &payload, kind: Self.kind)
    }

    public func encode(into payload: inout ByteBuffer) { NodeJSON.encode(self.reply, into: &payload) }
}

enum NodeJSON {
    static func encode<Value: Encodable>(_ value: Value, into payload: inout ByteBuffer) {
        // Encoding these plain values cannot fail.
        payload.writeBytes((try? JSONEncoder().encode(value)) ?? Data())
    }

    static func decode<Value: Decodable>(
        _ type: Value.Type,
        from payload: inout ByteBuffer,
        kind: MessageKind
    ) throws
        -> Value
    {
        let bytes = payload.readBytes(length: payload.readableBytes) ?? []
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw FerryWireError.malformedPayload(kind: kind, reason: "not a \(type) in JSON: \(error)")
        }
    }
}
