import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// One FerryWire connection to a peer, shared by many concurrent requests.
///
/// Each request gets its own request id; answers are matched by id, so they may come back in any
/// order. A request is either a call (one answer) or a subscription (answers flagged `more` until
/// one without the flag). When the connection ends, every request still waiting fails with an
/// error that names the peer.
public final class WireClient: Sendable {
    /// The peer, as given to ``connect(host:port:maxPayloadLength:logger:)``.
    public let peer: String
    private let channel: any Channel
    private let pending: NIOLockedValueBox<Pending>

    private init(peer: String, channel: any Channel, pending: NIOLockedValueBox<Pending>) {
        self.peer = peer
        self.channel = channel
        self.pending = pending
    }

    /// Connects to a FerryWire peer.
    ///
    /// - Parameter eventLoop: the loop the connection runs on; any of the shared group's if nil.
    public static func connect(
        host: String,
        port: Int,
        maxPayloadLength: Int = FrameDecoder.defaultMaxPayloadLength,
        credentials: ClusterCredentials? = WireSecurity.credentials,
        eventLoop: (any EventLoop)? = nil,
        logger: Logger = Logger(label: "ferry.wire-client")
    ) async throws -> WireClient {
        let peer = "\(host):\(port)"
        let pending = NIOLockedValueBox(Pending())
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: eventLoop ?? MultiThreadedEventLoopGroup.singleton.next())
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(5))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let credentials { try channel.pipeline.syncOperations.addClientTLS(credentials) }
                        try channel.pipeline.syncOperations.addWriteCoalescer()
                        try channel.pipeline.syncOperations.addFrameCodec(
                            maxPayloadLength: maxPayloadLength,
                            logger: logger,
                            acceptsPeers: false
                        )
                        try channel.pipeline.syncOperations.addHandler(
                            WireClientHandler(peer: peer, pending: pending, secured: credentials != nil)
                        )
                    }
                }
                .connect(host: host, port: port)
                .get()
        } catch {
            throw WireClientError.cannotConnect(peer: peer, reason: WireClientError.connectReason("\(error)"))
        }
        return WireClient(peer: peer, channel: channel, pending: pending)
    }

    /// Sends `message` and returns the answering frame; an error answer is returned as a frame
    /// too, and ``Frame/decode(as:)`` throws it.
    ///
    /// - Parameter timeout: how long to wait for the answer before giving up on it.
    public func call<Message: WireMessage>(_ message: Message, timeout: TimeAmount = .seconds(30)) async throws -> Frame
    {
        let requestID = self.pending.withLockedValue { $0.nextID() }
        let frame = Frame(message, requestID: requestID)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Frame, any Error>) in
                // Timer, registration and write in one trip to the connection's event loop (none
                // for a caller already on it): a timer scheduled from another thread would wake
                // the loop once more per call.
                let loop = self.channel.eventLoop
                let send: @Sendable () -> Void = {
                    let timer = loop.scheduleTask(in: timeout) {
                        self.fail(
                            requestID,
                            WireClientError.timedOut(peer: self.peer, kind: Message.kind, after: timeout)
                        )
                    }
                    let failure: (any Error)? = self.pending.withLockedValue { state in
                        if let closed = state.closed { return closed }
                        state.calls[requestID] = PendingCall(continuation: continuation, timer: timer)
                        return nil
                    }
                    if let failure {
                        timer.cancel()
                        continuation.resume(throwing: failure)
                        return
                    }
                    self.channel.writeAndFlush(frame).whenComplete { result in
                        if case .failure(let error) = result {
                            self.fail(requestID, WireClientError.connectionClosed(peer: self.peer, reason: "\(error)"))
                        }
                    }
                }
                if loop.inEventLoop { send() } else { loop.execute(send) }
            }
        } onCancel: {
            self.fail(requestID, CancellationError())
        }
    }

    /// Sends `message` and yields every answering frame until the peer sends one without the
    /// `more` flag, the connection ends, or the consumer stops iterating.
    public func subscribe<Message: WireMessage>(_ message: Message) -> AsyncThrowingStream<Frame, any Error> {
        let requestID = self.pending.withLockedValue { $0.nextID() }
        let (stream, continuation) = AsyncThrowingStream<Frame, any Error>.makeStream()
        let failure: (any Error)? = self.pending.withLockedValue { state in
            if let closed = state.closed { return closed }
            state.streams[requestID] = continuation
            return nil
        }
        if let failure {
            continuation.finish(throwing: failure)
            return stream
        }
        continuation.onTermination = { [pending] _ in
            pending.withLockedValue { _ = $0.streams.removeValue(forKey: requestID) }
        }
        self.channel.writeAndFlush(Frame(message, requestID: requestID)).whenComplete { result in
            if case .failure(let error) = result {
                self.fail(requestID, WireClientError.connectionClosed(peer: self.peer, reason: "\(error)"))
            }
        }
        return stream
    }

    /// Whether the connection is still open.
    public var isActive: Bool { self.channel.isActive }

    /// Closes the connection; waiting requests fail.
    public func close() async {
        try? await self.channel.close()
    }

    private func fail(_ requestID: UInt64, _ error: any Error) {
        let (call, stream) = self.pending.withLockedValue {
            ($0.calls.removeValue(forKey: requestID), $0.streams.removeValue(forKey: requestID))
        }
        call?.resume(with: .failure(error))
        stream?.finish(throwing: error)
    }
}

/// Why a request through a ``WireClient`` got no answer.
public enum WireClientError: Error, Hashable, Sendable, CustomStringConvertible {
    case cannotConnect(peer: String, reason: String)
    case connectionClosed(peer: String, reason: String)
    case timedOut(peer: String, kind: MessageKind, after: TimeAmount)
    /// The peer will not take this process: a TLS handshake failed, or it speaks TLS and this
    /// process has no credentials. Trying again cannot help.
    case refused(peer: String, reason: String)

    /// NIO's connect errors name the address and the errno at length: the part a person needs.
    static func connectReason(_ reason: String) -> String {
        if reason.contains("refused") || reason.contains("ECONNREFUSED") { return "connection refused" }
        if reason.contains("timed out") || reason.contains("Timeout") { return "connection timed out" }
        return reason
    }

    public var description: String {
        switch self {
        case .cannotConnect(let peer, let reason):
            "cannot connect to \(peer): \(reason); is the server running and listening there?"
        case .connectionClosed(let peer, let reason):
            "the connection to \(peer) ended before it answered: \(reason)"
        case .timedOut(let peer, let kind, let after):
            "\(peer) did not answer a \(kind) request within \(Double(after.nanoseconds) / 1e9) s"
        case .refused(let peer, let reason):
            "\(peer) refused this process: \(reason)"
        }
    }

    /// Whether the peer refused this process, which trying again cannot change.
    public var isRefusal: Bool {
        if case .refused = self { true } else { false }
    }
}

/// The requests of one connection that wait for answers.
struct Pending: Sendable {
    private var lastID: UInt64 = 0
    var calls: [UInt64: PendingCall] = [:]
    var streams: [UInt64: AsyncThrowingStream<Frame, any Error>.Continuation] = [:]
    /// Set when the connection has ended; new requests fail with it at once.
    var closed: (any Error)?

    mutating func nextID() -> UInt64 {
        self.lastID &+= 1
        return self.lastID
    }
}

/// A call waiting for its one answer, and the timer that gives up on it.
struct PendingCall: Sendable {
    let continuation: CheckedContinuation<Frame, any Error>
    let timer: Scheduled<Void>

    func resume(with result: Result<Frame, any Error>) {
        self.timer.cancel()
        self.continuation.resume(with: result)
    }
}

/// Hands each answer to the request with its id.
final class WireClientHandler: ChannelInboundHandler {
    typealias InboundIn = Frame

    private let peer: String
    private let pending: NIOLockedValueBox<Pending>
    /// The connection has TLS: a close before any answer is not for want of credentials.
    private let secured: Bool
    /// An answer came on this connection.
    private var answered = false

    init(peer: String, pending: NIOLockedValueBox<Pending>, secured: Bool) {
        self.peer = peer
        self.pending = pending
        self.secured = secured
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.answered = true
        let frame = Self.unwrapInboundIn(data)
        let id = frame.header.requestID
        let continuesStream = frame.header.flags.contains(.more) && !frame.header.flags.contains(.error)
        let (call, stream) = self.pending.withLockedValue { state in
            (
                state.calls.removeValue(forKey: id),
                continuesStream ? state.streams[id] : state.streams.removeValue(forKey: id)
            )
        }
        call?.resume(with: .success(frame))
        if let stream {
            if frame.header.kind == .error {
                let answer =
                    (try? frame.decode(as: ErrorMessage.self))
                    ?? ErrorMessage(code: .malformed, message: "unreadable error answer")
                stream.finish(throwing: answer)
            } else {
                stream.yield(frame)
                if !continuesStream { stream.finish() }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let reason =
            self.answered || self.secured
            ? "the peer closed it"
            : "the peer closed it before any answer; a cluster with credentials closes connections from processes without them (a command's --data-dir, or FERRY_DATA_DIR, names the cluster's data directory)"
        self.failAll(WireClientError.connectionClosed(peer: self.peer, reason: reason))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.failAll(self.failure(error))
        context.fireErrorCaught(error)
    }

    /// What `error` means to the calls waiting: a refusal (which no retry can help) when TLS
    /// says this process is not of the peer's cluster, else a closed connection.
    private func failure(_ error: any Error) -> WireClientError {
        if error is NIOSSLError {
            return .refused(
                peer: self.peer,
                reason:
                    "the TLS handshake failed: \(HandshakeFailure.reason(error)) (this process's credentials and the peer's are not of one cluster)"
            )
        }
        if error as? FerryWireError == .speaksTLS {
            return .refused(
                peer: self.peer,
                reason:
                    "it takes only members of its cluster (it speaks TLS), and this process has no cluster credentials; run it where 'ferry up' made them, or name the cluster's data directory with --data-dir or FERRY_DATA_DIR"
            )
        }
        if !self.secured, !self.answered {
            return .connectionClosed(
                peer: self.peer,
                reason:
                    "\(error); a cluster with credentials refuses processes without them (a command's --data-dir, or FERRY_DATA_DIR, names the cluster's data directory)"
            )
        }
        return .connectionClosed(peer: self.peer, reason: "\(error)")
    }

    private func failAll(_ error: any Error) {
        let (calls, streams) = self.pending.withLockedValue { state in
            if state.closed == nil { state.closed = error }
            defer {
                state.calls = [:]
                state.streams = [:]
            }
            return (state.calls, state.streams)
        }
        for call in calls.values { call.resume(with: .failure(error)) }
        for stream in streams.values { stream.finish(throwing: error) }
    }
}
