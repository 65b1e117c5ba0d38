import FerryEndpoints
import FerryWire
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// An object server: one FerryWire port where clients call the objects of its adapters.
///
/// Each call is checked against the call ledger (at-most-once), routed by its object's type to
/// an adapter, and answered with the result, with a forward (the object is active on another
/// node, or moved away), or with an error that says what was wrong. With an endpoint daemon, the
/// server names itself and its types there, and its persistent objects are claimed there (one
/// activation in the cluster).
public final class ObjectServer: Service, Sendable {
    public let adapters: [ObjectAdapter]
    private let byType: [String: ObjectAdapter]
    private let channel: any Channel
    let directory: ObjectDirectory
    private let ledger = CallLedger()
    private let logger: Logger
    private let halted = NIOLockedValueBox(false)
    /// Set once the server closes or halts: connections still open are closed at their next
    /// request, as a dead node's would be.
    private let stopped = NIOLockedValueBox(false)
    var isStopped: Bool { self.stopped.withLockedValue { $0 } }
    private let halts = AsyncStream<Void>.makeStream()

    public var host: String { self.channel.localAddress?.ipAddress ?? "?" }
    public var port: Int { self.channel.localAddress?.port ?? 0 }
    /// This node as bindings name it.
    public var node: ServiceEndpoint { self.directory.node }

    private init(
        adapters: [ObjectAdapter],
        byType: [String: ObjectAdapter],
        channel: any Channel,
        directory: ObjectDirectory,
        logger: Logger
    ) {
        self.adapters = adapters
        self.byType = byType
        self.channel = channel
        self.directory = directory
        self.logger = logger
    }

    /// Binds the server's port.
    ///
    /// - Parameters:
    ///   - registry: where objects are named (an endpoint daemon, or etcd); nil for a node alone
    ///     (no cluster-wide single activation, no binding by name).
    ///   - leaseTTL: how long a claim on a persistent object outlives a node that stopped renewing.
    public static func bind(
        adapters: [ObjectAdapter],
        host: String = "127.0.0.1",
        port: Int = 0,
        registry: RegistryAddress? = nil,
        leaseTTL: Duration = .seconds(5),
        logger: Logger = Logger(label: "ferry.objects")
    ) async throws -> ObjectServer {
        var byType: [String: ObjectAdapter] = [:]
        for adapter in adapters {
            for type in adapter.types.keys {
                guard byType[type] == nil else {
                    throw ErrorMessage(
                        code: .invalidArgument,
                        message:
                            "type '\(type)' is hosted by two adapters, '\(byType[type]!.name)' and '\(adapter.name)'"
                    )
                }
                byType[type] = adapter
            }
        }
        let handler = NIOLockedValueBox<ObjectServer?>(nil)
        let channel = try await bindFerryWireServer(
            host: host,
            port: port,
            maxPayloadLength: ObjectLimits.maxPayloadLength,
            logger: logger
        ) { eventLoop in
            // A connection that arrives before the server is ready is closed.
            guard let server = handler.withLockedValue({ $0 }) else {
                throw ErrorMessage(code: .unavailable, message: "the object server is starting")
            }
            return ObjectCallHandler(server: server, eventLoop: eventLoop)
        }
        let bound = channel.localAddress?.port ?? port
        let directory = ObjectDirectory(
            registry: registry,
            node: ServiceEndpoint(host: host, port: bound),
            ttl: leaseTTL,
            logger: logger
        )
        let server = ObjectServer(
            adapters: adapters,
            byType: byType,
            channel: channel,
            directory: directory,
            logger: logger
        )
        handler.withLockedValue { $0 = server }
        for adapter in adapters { adapter.attach(directory) }
        directory.onLost { [weak server] id, lease in
            guard let adapter = server?.adapter(for: id) else { return }
            Task { await adapter.drop(id, lease: lease, reason: "its claim at the registry was lost") }
        }
        return server
    }

    /// Serves until graceful shutdown: renews claims, registers the node and its types at the
    /// daemon, deactivates idle objects. On shutdown every object is deactivated (persistent
    /// ones saved) and the port closes.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.directory.keepClaims() }
            for adapter in self.adapters {
                group.addTask { await adapter.sweepIdle() }
            }
            if let registry = self.directory.registry {
                var names = [ObjectNames.nodes]
                names += self.byType.keys.sorted().map { ObjectNames.hosts($0) }
                for name in names {
                    let registration = LeasedRegistration(
                        name: name,
                        endpoints: [self.node],
                        ttl: self.directory.ttl,
                        registry: registry,
                        logger: self.logger
                    )
                    group.addTask { try? await registration.run() }
                }
            }
            // Until graceful shutdown, cancellation or a halt.
            await cancelWhenGracefulShutdown {
                for await _ in self.halts.stream {}
            }
            // Objects are saved while the claims are still renewed, so none runs out mid-save.
            // In a task of its own: this one may be cancelled, and the saves must not be.
            if !self.halted.withLockedValue({ $0 }) { await Task { await self.close() }.value }
            group.cancelAll()
        }
    }

    /// Deactivates every object and closes the port.
    public func close() async {
        self.stopped.withLockedValue { $0 = true }
        for adapter in self.adapters { await adapter.deactivateAll() }
        try? await self.channel.close()
        await self.directory.close()
    }

    /// Stops at once, as a node that dies does: nothing saved, no claim given up (they run out).
    public func halt() async {
        self.halted.withLockedValue { $0 = true }
        self.stopped.withLockedValue { $0 = true }
        self.halts.continuation.finish()
        try? await self.channel.close()
        await self.directory.close()
    }

    func adapter(for id: String) -> ObjectAdapter? { self.byType[String(ObjectNames.type(of: id))] }

    /// Whether calls to `id` run on their connection's event loop (``ObjectType/runsOnEventLoop``).
    func runsOnEventLoop(_ id: String) -> Bool {
        let type = String(ObjectNames.type(of: id))
        return self.byType[type]?.types[type]?.runsOnEventLoop ?? false
    }

    // MARK: Requests

    /// Answers one call, at most once per call id.
    func answer(_ call: ObjectCall, requestID: UInt64) async -> Frame {
        switch self.ledger.begin(call.callID) {
        case .answer(let future):
            // `finish` always succeeds the promise.
            return
                ((try? await future.get())
                ?? Frame(answering: ErrorMessage(code: .internalError, message: "no answer"), requestID: requestID))
                .withRequestID(requestID)
        case .run: break
        }
        let (frame, executed) = await self.run(call, requestID: requestID)
        self.ledger.finish(call.callID, with: frame, executed: executed)
        return frame
    }

    private func run(_ call: ObjectCall, requestID: UInt64) async -> (Frame, executed: Bool) {
        guard let adapter = self.adapter(for: call.object) else {
            let error = ErrorMessage(
                code: .notFound,
                message:
                    "no object '\(call.object)' here: this node hosts objects of type \(self.byType.keys.sorted().joined(separator: ", ")) (named TYPE or TYPE/KEY)"
            )
            return (Frame(answering: error, requestID: requestID), false)
        }
        let deadline =
            call.deadlineMilliseconds == 0 ? nil : ContinuousClock.now + .milliseconds(call.deadlineMilliseconds)
        do {
            let (value, epoch) = try await adapter.run(
                call.object,
                method: call.method,
                arguments: call.arguments,
                epoch: call.epoch,
                deadline: deadline
            )
            let answer = Frame(ObjectResult(.value(value, epoch: epoch)), flags: .response, requestID: requestID)
            guard answer.payload.readableBytes <= ObjectLimits.maxResultBytes else {
                let error = ErrorMessage(
                    code: .tooLarge,
                    message:
                        "the result of \(call.object).\(call.method) takes \(answer.payload.readableBytes) bytes; the limit is \(ObjectLimits.maxResultBytes)"
                )
                return (Frame(answering: error, requestID: requestID), true)
            }
            return (answer, true)
        } catch let elsewhere as ObjectElsewhere {
            return (Frame(ObjectResult(.forward(elsewhere.binding)), flags: .response, requestID: requestID), false)
        } catch let failure as InvocationFailure {
            // The method ran: its failure is its answer, kept like any other.
            return (Frame(answering: failure.error, requestID: requestID), true)
        } catch {
            // Refused before the method ran: a retry may run it.
            return (Frame(answering: error, requestID: requestID), false)
        }
    }

    /// Moves active object `id` to the object node at `target`.
    func relocate(_ request: ObjectRelocate) async throws -> ObjectBinding {
        guard let adapter = self.adapter(for: request.object) else {
            throw ErrorMessage(code: .notFound, message: "no object '\(request.object)' on this node to move")
        }
        guard request.host != self.node.host || request.port != self.node.port else {
            throw ErrorMessage(code: .invalidArgument, message: "'\(request.object)' is already on \(self.node)")
        }
        let failure = NIOLockedValueBox<(any Error)?>(nil)
        let retirement = await adapter.retire(request.object, onlyIfIdle: false) { activation in
            do {
                let state = try await activation.servant.state()
                let peer = try await WireClient.connect(
                    host: request.host,
                    port: request.port,
                    maxPayloadLength: ObjectLimits.maxPayloadLength,
                    logger: self.logger
                )
                defer { Task { await peer.close() } }
                let adopt = ObjectAdopt(
                    object: request.object,
                    state: state,
                    fromLease: self.directory.lease(of: request.object) ?? 0
                )
                guard case .forward(let binding) = try await peer.call(adopt).decode(as: ObjectResult.self).outcome
                else {
                    throw ErrorMessage(
                        code: .malformed,
                        message: "\(request.host):\(request.port) answered a move with a value"
                    )
                }
                // The lease is the new node's now; calls here are sent on there.
                self.directory.forget(request.object)
                await (activation.servant as? SegmentServant)?.stop()
                return .moved(binding)
            } catch {
                failure.withLockedValue { $0 = error }
                return .stays
            }
        }
        switch retirement {
        case .moved(let binding):
            self.logger.info("moved '\(request.object)' to \(binding)")
            return binding
        case .stays:
            let error = failure.withLockedValue { $0 }.map { "\($0)" } ?? "unknown"
            throw ErrorMessage(
                code: .unavailable,
                message: "cannot move '\(request.object)' to \(request.host):\(request.port): \(error); it stays here"
            )
        case .gone, nil:
            throw ErrorMessage(
                code: .notFound,
                message: "'\(request.object)' is not active on this node; nothing to move"
            )
        }
    }

    /// Takes over an object another node is moving here.
    func adopt(_ request: ObjectAdopt) async throws -> ObjectBinding {
        guard let adapter = self.adapter(for: request.object) else {
            throw ErrorMessage(
                code: .notFound,
                message:
                    "this node hosts no type '\(ObjectNames.type(of: request.object))' to take '\(request.object)' over"
            )
        }
        let activation = try await adapter.adopt(request.object, state: request.state, takeover: request.fromLease)
        return ObjectBinding(
            object: request.object,
            host: self.node.host,
            port: self.node.port,
            epoch: activation.epoch
        )
    }

    /// Every object this node has active, stored or forwarded.
    public func list() async -> [ObjectStatus] {
        var rows: [String: ObjectStatus] = [:]
        for adapter in self.adapters {
            for var status in adapter.statuses() {
                status.node = self.node.description
                rows[status.object] = status
            }
            guard let store = adapter.store, let stored = try? await store.list() else { continue }
            for entry in stored where adapter.types[entry.type] != nil && rows[entry.id] == nil {
                var status = adapter.status(entry.id, epoch: entry.epoch, state: "stored")
                status.node = self.node.description
                rows[entry.id] = status
            }
        }
        return rows.values.sorted { $0.object < $1.object }
    }
}

extension Frame {
    /// The same answer for another request id (a retry's).
    fileprivate func withRequestID(_ requestID: UInt64) -> Frame {
        var frame = self
        frame.header.requestID = requestID
        return frame
    }
}

/// One connection to an object server: each call runs as its own task, so a slow method holds
/// up only itself (on the pool; on the connection's event loop for the types that ask for it,
/// whose methods are never slow).
final class ObjectCallHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let server: ObjectServer
    /// Where calls to types that run on the event loop run: this connection's.
    private let executor: EventLoopTaskExecutor

    init(server: ObjectServer, eventLoop: any EventLoop) {
        self.server = server
        self.executor = EventLoopTaskExecutor(eventLoop)
    }

    /// The latency histogram of object calls at `/metrics`.
    private static let callTimer = Timer(label: "ferry_object_call_duration_seconds")

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let server = self.server
        guard !server.isStopped else {
            context.close(promise: nil)
            return
        }
        let frame = Self.unwrapInboundIn(data)
        let requestID = frame.header.requestID
        let channel = context.channel
        do {
            switch frame.header.kind {
            case .objectCall:
                let call = try frame.decode(as: ObjectCall.self)
                let started = NIODeadline.now()
                Task(executorPreference: server.runsOnEventLoop(call.object) ? self.executor : nil) {
                    channel.writeAndFlush(await server.answer(call, requestID: requestID), promise: nil)
                    Self.callTimer.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
                }
            case .objectRelocate:
                let request = try frame.decode(as: ObjectRelocate.self)
                Task {
                    channel.writeAndFlush(
                        await Self.bindingAnswer(requestID) { try await server.relocate(request) },
                        promise: nil
                    )
                }
            case .objectAdopt:
                let request = try frame.decode(as: ObjectAdopt.self)
                Task {
                    channel.writeAndFlush(
                        await Self.bindingAnswer(requestID) { try await server.adopt(request) },
                        promise: nil
                    )
                }
            case .objectList:
                _ = try frame.decode(as: ObjectList.self)
                Task {
                    let listing = ObjectListing(objects: await server.list())
                    channel.writeAndFlush(Frame(listing, flags: .response, requestID: requestID), promise: nil)
                }
            case .ping:
                context.writeAndFlush(
                    Self.wrapOutboundOut(
                        Frame(kind: .pong, flags: .response, requestID: requestID, payload: frame.payload)
                    ),
                    promise: nil
                )
            default:
                throw ErrorMessage(
                    code: .unknownKind,
                    message:
                        "an object server does not handle \(frame.header.kind) messages; it takes object-call, object-relocate, object-adopt, object-list and ping"
                )
            }
        } catch {
            context.writeAndFlush(Self.wrapOutboundOut(Frame(answering: error, requestID: requestID)), promise: nil)
        }
    }

    private static func bindingAnswer(_ requestID: UInt64, _ body: () async throws -> ObjectBinding) async -> Frame {
        do {
            return Frame(ObjectResult(.forward(try await body())), flags: .response, requestID: requestID)
        } catch {
            return Frame(answering: error, requestID: requestID)
        }
    }
}
