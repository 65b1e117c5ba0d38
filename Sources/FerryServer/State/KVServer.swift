import FerryWire
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The stateful key-value service: a ``KVStore`` behind a FerryWire port. Each request runs as
/// its own task, so a slow fsync holds up only the writes waiting for it, never reads.
public final class KVServer: Service, Sendable {
    public let store: KVStore
    private let channel: any Channel

    public var host: String { self.channel.localAddress?.ipAddress ?? "?" }
    public var port: Int { self.channel.localAddress?.port ?? 0 }

    private init(store: KVStore, channel: any Channel) {
        self.store = store
        self.channel = channel
    }

    /// Opens the store at `path` and binds the service's port.
    public static func bind(
        path: String,
        host: String = "127.0.0.1",
        port: Int = 0,
        logger: Logger = Logger(label: "ferry.kv")
    ) async throws -> KVServer {
        let store = try KVStore(path: path)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addFrameCodec(
                        maxPayloadLength: KVLimits.maxPayloadLength,
                        logger: logger
                    )
                    try channel.pipeline.syncOperations.addHandler(KVHandler(store: store, logger: logger))
                }
            }
            .bind(host: host, port: port)
            .get()
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

    private let store: KVStore
    private let logger: Logger

    init(store: KVStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        let requestID = frame.header.requestID
        let channel = context.channel
        let store = self.store
        if frame.header.kind == .ping {
            context.writeAndFlush(
                Self.wrapOutboundOut(
                    Frame(kind: .pong, flags: .response, requestID: requestID, payload: frame.payload)
                ),
                promise: nil
            )
            return
        }
        Task {
            let answer: Frame
            do {
                answer = try await Self.answer(frame, store: store)
            } catch let error as ErrorMessage {
                answer = Frame(error, flags: [.response, .error], requestID: requestID)
            } catch {
                answer = Frame(
                    ErrorMessage(code: .malformed, message: "\(error)"),
                    flags: [.response, .error],
                    requestID: requestID
                )
            }
            channel.writeAndFlush(answer, promise: nil)
        }
    }

    private static func answer(_ frame: Frame, store: KVStore) async throws -> Frame {
        let requestID = frame.header.requestID
        switch frame.header.kind {
        case .kvGet:
            let value = try await store.get(try frame.decode(as: KVGet.self).key)
            return Frame(value, flags: .response, requestID: requestID)
        case .kvWrite:
            let written = try await store.write(try frame.decode(as: KVWrite.self))
            return Frame(written, flags: .response, requestID: requestID)
        case .kvList:
            let list = try frame.decode(as: KVList.self)
            let entries = try await store.list(prefix: list.prefix, limit: Int(list.limit))
            return Frame(entries, flags: .response, requestID: requestID)
        default:
            throw ErrorMessage(
                code: .unknownKind,
                message:
                    "the key-value service does not handle \(frame.header.kind) messages; it takes kv-get, kv-write, kv-list and ping"
            )
        }
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
