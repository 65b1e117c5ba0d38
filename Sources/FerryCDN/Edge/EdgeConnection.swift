import FerryHTTP
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
    /// A request that could not be read while an answer was on its way: refused after that answer,
    /// and nothing after it is read.
    private var refusal: (HTTPResponseStatus, String)?
    /// An answer said `Connection: close`: what the client pipelined after it is dropped.
    private var closing = false
    /// The socket is read again only once the requests read so far are answered (backpressure: a
    /// client cannot queue without bound behind a slow miss).
    private var readWanted = false
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

    func read(context: ChannelHandlerContext) {
        guard !self.busy, self.queued.isEmpty else {
            self.readWanted = true
            return
        }
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard self.refusal == nil, !self.closing else { return }
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
        // The decoder reports each read after its error too: a refusal is already on its way.
        guard self.refusal == nil, !self.closing else { return }
        context.close(promise: nil)
    }

    /// Answers the queued requests in order. Answers that are ready at once (hits) are written in
    /// this loop; one that waits (a miss) resumes it when it comes, so the stack never grows with
    /// the queue.
    private func next(_ context: ChannelHandlerContext) {
        while !self.busy, !self.closing, !self.queued.isEmpty {
            let request = self.queued.removeFirst()
            if request.head.uri == EdgeServer.statusPath {
                self.writeStatus(context, request)
                continue
            }
            self.busy = true
            let pending = PendingAnswer()
            let loopBound = NIOLoopBound((self, context, pending), eventLoop: context.eventLoop)
            self.core.answer(request, on: context.eventLoop).whenSuccess { answer in
                let (connection, context, pending) = loopBound.value
                guard !pending.inLoop else {
                    pending.answer = answer
                    return
                }
                connection.busy = false
                connection.write(context, answer, for: request)
                connection.next(context)
            }
            pending.inLoop = false
            guard let answer = pending.answer else { return }
            self.busy = false
            self.write(context, answer, for: request)
        }
        if self.closing { self.queued.removeAll() }
        guard !self.busy, self.queued.isEmpty else { return }
        if let (status, reason) = self.refusal { return self.refuse(context, status, reason) }
        if self.readWanted, !self.closing {
            self.readWanted = false
            context.read()
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
        case .failed(.answered(let response)):
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
        if !keepAlive {
            self.closing = true
            context.close(mode: .output, promise: nil)
        }
    }

    /// An answer that may come while `next` is still in its loop (then the loop writes it).
    private final class PendingAnswer {
        var inLoop = true
        var answer: EdgeAnswer?
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
        if !request.head.isKeepAlive {
            self.closing = true
            context.close(mode: .output, promise: nil)
        }
    }

    /// A request that cannot be read: answered, then the connection closes (what follows it on the
    /// connection cannot be trusted).
    private func refuse(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ reason: String) {
        guard !self.busy, self.queued.isEmpty else {
            self.refusal = (status, reason)
            return
        }
        self.refusal = nil
        self.closing = true
        var rendered = EdgeRendering.error(status, reason, allocator: context.channel.allocator)
        rendered.finishHead(keepAlive: false)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.write(Self.wrapOutboundOut(rendered.head), promise: rendered.body == nil ? written : nil)
        if let body = rendered.body { context.write(Self.wrapOutboundOut(body), promise: written) }
        context.flush()
        // Closed lingering (FerryHTTP's client limits, in front): a client that sent more than was
        // read still gets the refusal rather than a reset.
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in
            bound.value.triggerUserOutboundEvent(CloseLingering(), promise: nil)
        }
    }
}
