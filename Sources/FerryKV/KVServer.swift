import FerryWire
import Logging
import Metrics
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The stateful key-value service: a ``KVStorage`` (a SQLite file, or PostgreSQL) behind a
/// FerryWire port. Each request runs as its own task, so a slow fsync holds up only the writes
/// waiting for it, never reads.
public final class KVServer: Service, Sendable {
    public let store: any KVStorage
    private let channel: any Channel

    public var host: String { self.channel.localAddress?.ipAddress ?? "?" }
    public var port: Int { self.channel.localAddress?.port ?? 0 }

    private init(store: any KVStorage, channel: any Channel) {
        self.store = store
        self.channel = channel
    }

    /// Opens the SQLite store at `path` and binds the service's port.
    public static func bind(
        path: String,
        host: String = "127.0.0.1",
        port: Int = 0,
        logger: Logger = Logger(label: "ferry.kv")
    ) async throws -> KVServer {
        try await Self.bind(store: try KVStore(path: path), host: host, port: port, logger: logger)
    }

    /// Binds the service's port in front of `store`.
    public static func bind(
        store: any KVStorage,
        host: String = "127.0.0.1",
        port: Int = 0,
        logger: Logger = Logger(label: "ferry.kv")
    ) async throws -> KVServer {
        let channel = try await bindFerryWireServer(
            host: host,
            port: port,
            maxPayloadLength: KVLimits.maxPayloadLength,
            logger: logger
        ) { _ in KVHandler(store: store, logger: logger) }
        return KVServer(store: store, channel: channel)
    }

    public func run() async throws {
        try await gracefulShutdown()
        await self.close()
    }

    /// Stops listening and closes the store; requests still in flight are answered with errors.
    public func close() async {
        try? await self.channel.close()
        try? self.store.close()
    }
}

/// One connection: decodes a request, answers it from a task when the store has.
final class KVHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let store: any KVStorage
    /// The store when it is a local SQLite file, whose reads run inline.
    private let local: KVStore?
    private let logger: Logger

    init(store: any KVStorage, logger: Logger) {
        self.store = store
        self.local = store as? KVStore
        self.logger = logger
    }

    /// Latency histograms at `/metrics`, one per kind of request.
    private static let getTimer = Timer(label: "ferry_kv_request_duration_seconds", dimensions: [("op", "get")])
    private static let listTimer = Timer(label: "ferry_kv_request_duration_seconds", dimensions: [("op", "list")])
    private static let writeTimer = Timer(label: "ferry_kv_request_duration_seconds", dimensions: [("op", "write")])

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        let requestID = frame.header.requestID
        let started = NIODeadline.now()
        do {
            switch frame.header.kind {
            case .kvGet:
                let key = try frame.decode(as: KVGet.self).key
                guard let local = self.local else {
                    let store = self.store
                    return Self.answerLater(requestID, started, Self.getTimer, context.channel) {
                        try await store.get(key)
                    }
                }
                // Point reads of a local file run inline: a WAL snapshot read never waits for the writer.
                self.answer(Frame(try local.getNow(key), flags: .response, requestID: requestID), context: context)
                Self.getTimer.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
            case .kvList:
                let list = try frame.decode(as: KVList.self)
                guard let local = self.local else {
                    let store = self.store
                    return Self.answerLater(requestID, started, Self.listTimer, context.channel) {
                        try await store.list(prefix: list.prefix, limit: Int(list.limit))
                    }
                }
                let entries = try local.listNow(prefix: list.prefix, limit: Int(list.limit))
                self.answer(Frame(entries, flags: .response, requestID: requestID), context: context)
                Self.listTimer.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
            case .kvWrite:
                // Writes wait for the group commit's fsync on the writer thread; the answer goes
                // back through the connection's event loop.
                let channel = context.channel
                self.store.enqueue(try frame.decode(as: KVWrite.self)) { result in
                    let answer: Frame
                    switch result {
                    case .success(let written): answer = Frame(written, flags: .response, requestID: requestID)
                    case .failure(let error): answer = Frame(answering: error, requestID: requestID)
                    }
                    channel.writeAndFlush(answer, promise: nil)
                    Self.writeTimer.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
                }
            case .ping:
                self.answer(
                    Frame(kind: .pong, flags: .response, requestID: requestID, payload: frame.payload),
                    context: context
                )
            default:
                throw ErrorMessage(
                    code: .unknownKind,
                    message:
                        "the key-value service does not handle \(frame.header.kind) messages; it takes kv-get, kv-write, kv-list and ping"
                )
            }
        } catch {
            self.answer(Frame(answering: error, requestID: requestID), context: context)
        }
    }

    /// Answers a read the store answers elsewhere (a database server) from a task of its own.
    private static func answerLater<Answer: WireMessage>(
        _ requestID: UInt64,
        _ started: NIODeadline,
        _ timer: Timer,
        _ channel: any Channel,
        _ read: @escaping @Sendable () async throws -> Answer
    ) {
        Task {
            let answer: Frame
            do {
                answer = Frame(try await read(), flags: .response, requestID: requestID)
            } catch {
                answer = Frame(answering: error, requestID: requestID)
            }
            channel.writeAndFlush(answer, promise: nil)
            timer.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
        }
    }

    /// Answers are flushed once per read burst, so a pipelining client costs one write syscall.
    private func answer(_ frame: Frame, context: ChannelHandlerContext) {
        context.write(Self.wrapOutboundOut(frame), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }
}

/// A connection to a key-value service. Concurrent calls share it.
public struct KVClient: Sendable {
    let wire: WireClient

    public static func connect(host: String, port: Int) async throws -> KVClient {
        KVClient(
            wire: try await WireClient.connect(host: host, port: port, maxPayloadLength: KVLimits.maxPayloadLength)
        )
    }

    /// The value of `key`, or `nil` when it does not exist.
    public func get(_ key: String) async throws -> [UInt8]? {
        try await self.wire.call(KVGet(key: key)).decode(as: KVValue.self).value
    }

    /// Stores `value` under `key`; returns once the server reports it durable.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8]) async throws -> KVWritten {
        try await self.write(KVWrite(key: key, operation: .put(value: value)))
    }

    /// Deletes `key`; `applied` is false when it did not exist.
    @discardableResult
    public func delete(_ key: String) async throws -> KVWritten {
        try await self.write(KVWrite(key: key, operation: .delete))
    }

    /// Sets `value` only if `key` holds `expected` (`nil`: only if absent).
    public func compareAndSet(_ key: String, expected: [UInt8]?, value: [UInt8]) async throws -> KVWritten {
        try await self.write(KVWrite(key: key, operation: .compareAndSet(expected: expected, value: value)))
    }

    public func write(_ write: KVWrite) async throws -> KVWritten {
        try await self.wire.call(write).decode(as: KVWritten.self)
    }

    public func list(prefix: String, limit: Int = 1000) async throws -> KVEntries {
        try await self.wire.call(KVList(prefix: prefix, limit: UInt32(clamping: limit))).decode(as: KVEntries.self)
    }

    public func close() async { await self.wire.close() }
}
