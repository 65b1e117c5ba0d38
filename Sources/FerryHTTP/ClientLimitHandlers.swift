import FerryPosix
import Logging
import NIOCore
import NIOHTTP1

extension ChannelPipeline.SynchronousOperations {
    /// Puts a NIO HTTP/1 server's client under `timeouts` and `sources`' cap. Call after the
    /// request decoder is added and before the handler that answers: a part in front of the
    /// decoder sees the raw bytes (a head's first byte, every write), one behind it sees the
    /// decoded requests.
    public func addClientLimits(_ timeouts: ClientTimeouts, sources: SourceLimit, logger: Logger) throws {
        let decoded = ClientTimeoutHandler(timeouts: timeouts, logger: logger)
        try self.addHandler(ClientBytesHandler(timeouts: decoded, sources: sources, logger: logger), position: .first)
        try self.addHandler(decoded)
    }
}

/// Behind the decoder: sees where each request's head and body end.
final class ClientTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    fileprivate var deadline: ClientDeadline
    /// After a 408: the client's bytes are dropped until it closes or `linger` is over.
    fileprivate var discarding = false
    static let linger = TimeAmount.seconds(2)
    private var timer = DeadlineTimer()
    private var raw: ChannelHandlerContext?
    private let logger: Logger

    init(timeouts: ClientTimeouts, logger: Logger) {
        self.deadline = ClientDeadline(timeouts: timeouts, now: MonotonicClock.nanoseconds())
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let now = MonotonicClock.nanoseconds()
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            let length = head.headers.first(name: "content-length").flatMap { Int($0) } ?? 0
            let bodyFollows = length > 0 || head.headers.contains(name: "transfer-encoding")
            self.deadline.headRead(bodyFollows: bodyFollows, now: now)
        case .body:
            break  // the bytes side saw them come
        case .end:
            self.deadline.answered(now: now)
        }
        self.setTimer()
        context.fireChannelRead(data)
    }

    /// From the bytes side, with its context: where a 408 is written without the encoder.
    fileprivate func start(raw context: ChannelHandlerContext) {
        self.raw = context
        self.setTimer()
    }

    fileprivate func bytesArrived() {
        self.deadline.requestBytesArrived(now: MonotonicClock.nanoseconds())
        self.setTimer()
    }

    /// The connection closed: no timer keeps this handler.
    fileprivate func stop() {
        self.timer.cancel()
        self.raw = nil
    }

    fileprivate func wrote() {
        self.deadline.serverWrote(now: MonotonicClock.nanoseconds())
        self.setTimer()
    }

    private func setTimer() {
        guard let context = self.raw else { return }
        self.timer.set(for: self.deadline, on: context.eventLoop) {
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            return {
                bound.value.timer.fired()
                bound.value.closeIfExpired()
            }
        }
    }

    /// A lingering close, as nginx's: what was written, then FIN, then what the client still sends
    /// is read and dropped for a while. Closed outright with its bytes unread, the socket would
    /// answer them with a reset, and a reset makes the client's kernel throw away the answer it
    /// has not read yet (a 408, a 400).
    fileprivate func closeLingering(_ context: ChannelHandlerContext) {
        self.discarding = true
        self.timer.cancel()
        context.close(mode: .output).whenFailure { _ in context.close(promise: nil) }
        context.eventLoop.scheduleTask(in: Self.linger) { context.close(promise: nil) }
    }

    private func closeIfExpired() {
        guard let context = self.raw, context.channel.isActive, !self.discarding else { return }
        guard let wait = self.deadline.expired(now: MonotonicClock.nanoseconds()) else {
            self.setTimer()
            return
        }
        let reason = self.deadline.reason(wait)
        self.logger.debug("client \(context.channel.remoteAddress?.description ?? "?"): \(reason); closing")
        if self.deadline.answers408(wait) {
            let answer = IOData.byteBuffer(HTTPStatus.requestTimeout.closingAnswer(reason))
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.writeAndFlush(NIOAny(answer)).whenComplete { _ in bound.value.0.closeLingering(bound.value.1) }
        } else {
            context.close(promise: nil)
        }
    }
}

/// What a handler behind the client limits sends (`triggerUserOutboundEvent`) once its last answer
/// is written, instead of closing: the connection closes lingering, so that the client reads the
/// answer even when it had sent more than was read.
public struct CloseLingering: Sendable {
    public init() {}
}

/// In front of the decoder: the cap per source at the connection's start, and every byte in and
/// out for the timeouts.
final class ClientBytesHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let timeouts: ClientTimeoutHandler
    private let sources: SourceLimit
    private let logger: Logger
    private var source: PeerAddress?
    private var admitted = false

    init(timeouts: ClientTimeoutHandler, sources: SourceLimit, logger: Logger) {
        self.timeouts = timeouts
        self.sources = sources
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        if self.sources.maximum > 0 {
            self.source = context.channel.remoteAddress.flatMap(PeerAddress.init)
            guard self.sources.admit(self.source, logger: self.logger) else {
                context.writeAndFlush(NIOAny(IOData.byteBuffer(SourceLimit.refusalAnswer))).whenComplete { _ in
                    context.close(promise: nil)
                }
                return
            }
            self.admitted = true
        }
        self.timeouts.start(raw: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if self.admitted { self.sources.release(self.source?.bytes ?? []) }
        self.admitted = false
        self.timeouts.stop()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.timeouts.discarding else { return }
        self.timeouts.bytesArrived()
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !self.timeouts.discarding else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        self.timeouts.wrote()
        context.write(data, promise: promise)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is CloseLingering else { return context.triggerUserOutboundEvent(event, promise: promise) }
        if !self.timeouts.discarding { self.timeouts.closeLingering(context) }
        promise?.succeed()
    }
}

extension PeerAddress {
    /// The IP address of a NIO socket address; `nil` for a Unix socket's.
    init?(_ address: SocketAddress) {
        switch address {
        case .v4(let ip):
            self.init(bytes: withUnsafeBytes(of: ip.address.sin_addr) { Array($0) }, port: address.port ?? 0)
        case .v6(let ip):
            self.init(bytes: withUnsafeBytes(of: ip.address.sin6_addr) { Array($0) }, port: address.port ?? 0)
        case .unixDomainSocket: return nil
        }
    }
}
