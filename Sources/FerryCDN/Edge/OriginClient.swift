import FerryPosix
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// One whole answer from the origin: the edge stores or relays only answers that arrived whole.
struct OriginResponse: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: ByteBuffer
    /// When the request left and the answer's head arrived, in seconds since the epoch (RFC 9111's
    /// request_time and response_time, for the age of what is stored).
    var requestTime: Double
    var responseTime: Double
}

/// Why the origin gave no usable answer; each maps to the status the client gets when no stale
/// copy may stand in.
enum OriginFailure: Error, CustomStringConvertible, Sendable {
    case unreachable(String)
    case timedOut(Duration)
    case malformed(String)
    case cutShort(received: Int)
    case tooLarge(limit: Int)
    /// A whole answer, but an error (5xx) where a kept object was being revalidated: a failure for
    /// stale-if-error, and the client gets it as the origin gave it when no stale copy may stand in.
    case answered(OriginResponse)

    var status: HTTPResponseStatus {
        switch self {
        case .timedOut: .gatewayTimeout
        case .answered(let response): response.status
        default: .badGateway
        }
    }

    var description: String {
        switch self {
        case .unreachable(let reason): "the origin cannot be reached: \(reason)"
        case .timedOut(let limit): "the origin was silent for \(limit)"
        case .malformed(let reason): "the origin's answer is not HTTP: \(reason)"
        case .cutShort(let received): "the origin's answer broke off after \(received) body bytes"
        case .tooLarge(let limit): "the origin's answer is larger than the edge's limit of \(limit) bytes"
        case .answered(let response): "the origin answered \(response.status.code)"
        }
    }
}

/// A request to the origin, on its own connection (the origin sees only misses and
/// revalidations, one per object however many clients ask: see ``MissCoalescer``).
struct OriginClient: Sendable {
    let host: String
    let port: Int
    /// The Host header the origin is asked with, as nginx's `proxy_pass` does by default.
    let authority: String
    let connectTimeout: Duration
    /// How long the origin may stay silent, before its head or within its body.
    let idleTimeout: Duration
    let maxBodyBytes: Int

    /// A connection failure in a few words ("Connection refused"), not NIO's whole report.
    static func reason(_ error: Error) -> String {
        var error = error
        if let connection = error as? NIOConnectionError, let first = connection.connectionErrors.first?.error {
            error = first
        }
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        if let channel = error as? ChannelError, case .connectTimeout(let limit) = channel {
            return "no connection within \(limit)"
        }
        return "\(error)"
    }

    func fetch(
        method: HTTPMethod,
        uri: String,
        headers: HTTPHeaders,
        body: ByteBuffer?,
        on eventLoop: EventLoop
    ) -> EventLoopFuture<OriginResponse> {
        let promise = eventLoop.makePromise(of: OriginResponse.self)
        var headers = headers
        headers.replaceOrAdd(name: "Host", value: self.authority)
        headers.replaceOrAdd(name: "Connection", value: "close")
        if let body { headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes)) }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)
        let (maxBodyBytes, idleTimeout) = (self.maxBodyBytes, self.idleTimeout)
        let idle = TimeAmount.nanoseconds(Int64(clamping: self.idleTimeout.wholeNanoseconds))
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(Int64(clamping: self.connectTimeout.wholeNanoseconds)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHTTPClientHandlers()
                    try pipeline.addHandler(IdleStateHandler(readTimeout: idle))
                    try pipeline.addHandler(
                        OriginExchange(promise: promise, maxBodyBytes: maxBodyBytes, idleTimeout: idleTimeout)
                    )
                }
            }
            .connect(host: self.host, port: self.port)
            .whenComplete { result in
                switch result {
                case .failure(let error):
                    promise.fail(OriginFailure.unreachable("\(self.host):\(self.port): \(Self.reason(error))"))
                case .success(let channel):
                    channel.write(HTTPClientRequestPart.head(head), promise: nil)
                    if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
                    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                    promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
                }
            }
        return promise.futureResult
    }
}

/// Collects one answer; anything but a whole answer fails the promise, so nothing cut short is
/// ever stored.
private final class OriginExchange: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private struct State {
        var head: HTTPResponseHead?
        var body: ByteBuffer?
        var responseTime = 0.0
        var done = false
    }

    private let promise: EventLoopPromise<OriginResponse>
    private let maxBodyBytes: Int
    private let idleTimeout: Duration
    private let requestTime = EdgeClock.now()
    private var state = State()

    init(promise: EventLoopPromise<OriginResponse>, maxBodyBytes: Int, idleTimeout: Duration) {
        self.promise = promise
        self.maxBodyBytes = maxBodyBytes
        self.idleTimeout = idleTimeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.state.done else { return }
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            // 1xx answers are interim; the final one follows.
            guard head.status.code >= 200 else { return }
            self.state.head = head
            self.state.responseTime = EdgeClock.now()
        case .body(var part):
            let received = self.state.body?.readableBytes ?? 0
            guard received + part.readableBytes <= self.maxBodyBytes else {
                return self.finish(context, .failure(OriginFailure.tooLarge(limit: self.maxBodyBytes)))
            }
            if self.state.body == nil {
                self.state.body = part
            } else {
                self.state.body!.writeBuffer(&part)
            }
        case .end:
            guard let head = self.state.head else {
                return self.finish(context, .failure(OriginFailure.malformed("an answer without a head")))
            }
            let response = OriginResponse(
                status: head.status,
                headers: head.headers,
                body: self.state.body ?? ByteBuffer(),
                requestTime: self.requestTime,
                responseTime: self.state.responseTime
            )
            self.finish(context, .success(response))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            return self.finish(context, .failure(OriginFailure.timedOut(self.idleTimeout)))
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is HTTPParserError {
            let received = self.state.body?.readableBytes ?? 0
            // The parser fails at EOF inside a body whose length was announced: a cut, not garbage.
            let failure =
                self.state.head != nil ? OriginFailure.cutShort(received: received) : .malformed("\(error)")
            return self.finish(context, .failure(failure))
        }
        self.finish(context, .failure(OriginFailure.unreachable(OriginClient.reason(error))))
    }

    func channelInactive(context: ChannelHandlerContext) {
        let received = self.state.body?.readableBytes ?? 0
        let failure: OriginFailure =
            self.state.head == nil
            ? .malformed("the connection closed before an answer") : .cutShort(received: received)
        self.finish(context, .failure(failure))
    }

    private func finish(_ context: ChannelHandlerContext, _ result: Result<OriginResponse, Error>) {
        guard !self.state.done else { return }
        self.state.done = true
        self.promise.completeWith(result)
        context.close(promise: nil)
    }
}
