import FerryWire
import Metrics
import NIOCore

/// What one request to the key-value service needs, as its loops (``KVLoop``) work it out: an
/// answer at once, a place in the next group commit, or a read that waits for a database server.
enum KVReply {
    /// Answered on the calling thread: a get or list of a local file, a ping, a refusal.
    case now(KVAnswer)
    /// Queued for the store's group commit; its answer comes from `enqueue`'s completion, once
    /// the write is durable.
    case write(KVWrite)
    /// A read of a database server, answered from a task of its own.
    case later(@Sendable () async -> KVAnswer)

    /// The reply to request `frame`; `local` is the store when it is a SQLite file of this process.
    static func to(_ frame: Frame, store: any KVStorage, local: KVStore?) -> KVReply {
        let requestID = frame.header.requestID
        do {
            switch frame.header.kind {
            case .kvGet:
                let key = try frame.decode(as: KVGet.self).key
                // Point reads of a local file run inline: from memory, or a WAL snapshot read that
                // never waits for the writer.
                guard let local else { return Self.later(requestID) { try await store.get(key) } }
                return .now(.message(try local.getNow(key), requestID: requestID))
            case .kvList:
                let list = try frame.decode(as: KVList.self)
                guard let local else {
                    return Self.later(requestID) { try await store.list(prefix: list.prefix, limit: Int(list.limit)) }
                }
                let entries = try local.listNow(prefix: list.prefix, limit: Int(list.limit))
                return .now(.frame(Frame(entries, flags: .response, requestID: requestID)))
            case .kvWrite:
                return .write(try frame.decode(as: KVWrite.self))
            case .ping:
                return .now(.frame(Frame(kind: .pong, flags: .response, requestID: requestID, payload: frame.payload)))
            default:
                throw ErrorMessage(
                    code: .unknownKind,
                    message:
                        "the key-value service does not handle \(frame.header.kind) messages; it takes kv-get, kv-write, kv-list and ping"
                )
            }
        } catch {
            return .now(.frame(Frame(answering: error, requestID: requestID)))
        }
    }

    private static func later<Answer: WireMessage>(
        _ requestID: UInt64,
        _ read: @escaping @Sendable () async throws -> Answer
    ) -> KVReply {
        .later {
            do {
                return .frame(Frame(try await read(), flags: .response, requestID: requestID))
            } catch {
                return .frame(Frame(answering: error, requestID: requestID))
            }
        }
    }

    /// The latency histogram at `/metrics` for requests of `kind` (none for pings and refusals).
    static func timer(for kind: MessageKind) -> Timer? {
        switch kind {
        case .kvGet: Self.getTimer
        case .kvList: Self.listTimer
        case .kvWrite: Self.writeTimer
        default: nil
        }
    }

    private static let getTimer = Timer(label: "ferry_kv_request_duration_seconds", dimensions: [("op", "get")])
    private static let listTimer = Timer(label: "ferry_kv_request_duration_seconds", dimensions: [("op", "list")])
    private static let writeTimer = Timer(label: "ferry_kv_request_duration_seconds", dimensions: [("op", "write")])
}
