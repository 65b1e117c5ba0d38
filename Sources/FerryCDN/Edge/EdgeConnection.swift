import NIOCore
import NIOHTTP1

/// One client connection: requests are answered one at a time, in order (a pipelined request
/// waits for the one before it), and each answer is written as raw bytes: a kept object's
/// rendered head, then its body, without re-encoding either.
final class EdgeConnection: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    /// Bodies of requests that pass to the origin are held whole up to this size.
    static let maxRequestBody = 16 << 20

    private let core: EdgeCore
    private var reading: EdgeRequest?
    private var queued: [EdgeRequest] = []
    private var busy = false
    /// A request that could not be read while an answer was on its way: refused after that answer.
    private var refusal: (HTTPResponseStatus, String)?
    private var client = "-"

    init(core: EdgeCore) {
        self.core = core
    }

    func channelActive(context: ChannelHandlerContext) {
        self.client = context.channel.remoteAddress?.ipAddress ?? "-"
        EdgeStats.bump(self.core.stats.connections)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        EdgeStats.bump(self.core.stats.connections, by: -1)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.reading = EdgeRequest(head: head, body: nil, client: self.client)
        case .body(var part):
            guard var request = self.reading else { return }
            let held = request.body?.readableBytes ?? 0
            guard held + part.readableBytes <= Self.maxRequestBody else {
                self.reading = nil
                return self.refuse(context, .payloadTooLarge, "the request body is over \(Self.maxRequestBody) bytes")
            }
            if request.body == nil {
                request.body = part
            } else {
                request.body!.writeBuffer(&part)
            }
            self.reading = request
        case .end:
            guard let request = self.reading else { return }
            self.reading = nil
            self.queued.append(request)
            self.next(context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is HTTPParserError {
            return self.refuse(context, .badRequest, "the request is not HTTP/1.1: \(error)")
        }
        context.close(promise: nil)
    }

    private func next(_ context: ChannelHandlerContext) {
        guard !self.busy else { return }
        guard !self.queued.isEmpty else {
            if let (status, reason) = self.refusal { self.refuse(context, status, reason) }
            return
        }
        let request = self.queued.removeFirst()
        if request.head.uri == EdgeServer.statusPath {
            self.writeStatus(context, request)
            return self.next(context)
        }
        self.busy = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.core.answer(request, on: context.eventLoop).whenSuccess { answer in
            let (connection, context) = loopBound.value
            connection.busy = false
            connection.write(context, answer, for: request)
            connection.next(context)
        }
    }

    private func write(_ context: ChannelHandlerContext, _ answer: EdgeAnswer, for request: EdgeRequest) {
        let keepAlive = request.head.isKeepAlive
        var rendered: EdgeRendering
        switch answer {
        case .cached(let entry, let label):
            rendered = EdgeRendering.cached(
                entry,
                label: label,
                request: request.head,
                now: EdgeClock.now(),
                allocator: context.channel.allocator
            )
        case .relayed(let response):
            rendered = EdgeRendering.relayed(response, request: request.head, allocator: context.channel.allocator)
        case .failed(let failure):
            rendered = EdgeRendering.error(failure.status, "\(failure)", allocator: context.channel.allocator)
        }
        rendered.finishHead(keepAlive: keepAlive)
        context.write(Self.wrapOutboundOut(rendered.head), promise: nil)
        if let body = rendered.body, request.head.method != .HEAD {
            context.write(Self.wrapOutboundOut(body), promise: nil)
        }
        context.flush()
        if !keepAlive { context.close(mode: .output, promise: nil) }
    }

    private func writeStatus(_ context: ChannelHandlerContext, _ request: EdgeRequest) {
        var body = context.channel.allocator.buffer(capacity: 512)
        body.writeString(self.core.statusJSON())
        body.writeStaticString("\n")
        var rendered = EdgeRendering.plain(
            .ok,
            body: body,
            type: "application/json",
            allocator: context.channel.allocator
        )
        rendered.finishHead(keepAlive: request.head.isKeepAlive)
        context.write(Self.wrapOutboundOut(rendered.head), promise: nil)
        if request.head.method != .HEAD, let body = rendered.body {
            context.write(Self.wrapOutboundOut(body), promise: nil)
        }
        context.flush()
        if !request.head.isKeepAlive { context.close(mode: .output, promise: nil) }
    }

    /// A request that cannot be read: answered, then the connection closes (what follows it on the
    /// connection cannot be trusted).
    private func refuse(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ reason: String) {
        guard !self.busy, self.queued.isEmpty else {
            self.refusal = (status, reason)
            return
        }
        self.refusal = nil
        var rendered = EdgeRendering.error(status, reason, allocator: context.channel.allocator)
        rendered.finishHead(keepAlive: false)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.write(Self.wrapOutboundOut(rendered.head), promise: rendered.body == nil ? written : nil)
        if let body = rendered.body { context.write(Self.wrapOutboundOut(body), promise: written) }
        context.flush()
        let channel = context.channel
        written.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }
}
