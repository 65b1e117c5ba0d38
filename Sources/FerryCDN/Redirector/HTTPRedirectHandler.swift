import FerryHTTP
import NIOCore
import NIOHTTP1

/// The redirector's HTTP side: every request is answered `302 Found` with the edge the policy
/// picks for the client and the path (or the origin when no edge can take it); its own status
/// is at `/.ferry/status`.
final class HTTPRedirectHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let redirector: RedirectorCore
    private var head: HTTPRequestHead?

    init(redirector: RedirectorCore) {
        self.redirector = redirector
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            self.answer(head, context: context)
        }
    }

    private func answer(_ request: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Date", value: HTTPDate.now())
        headers.add(name: "Server", value: "ferry-redirector")
        headers.add(name: "Cache-Control", value: "no-store")
        let status: HTTPResponseStatus
        var body = context.channel.allocator.buffer(capacity: 256)
        if request.uri == "/.ferry/status" {
            status = .ok
            headers.add(name: "Content-Type", value: "application/json")
            body.writeString(self.redirector.statusJSON())
        } else if request.method != .GET && request.method != .HEAD {
            status = .methodNotAllowed
            headers.add(name: "Allow", value: "GET, HEAD")
            body.writeString("the redirector answers GET and HEAD with a redirect to an edge\n")
        } else {
            let client = self.redirector.clientAddress(
                peer: IPAddress(context.channel.remoteAddress),
                forwardedFor: request.headers["x-forwarded-for"]
            )
            let location = self.redirector.location(client: client, target: request.uri)
            status = .found
            headers.add(name: "Location", value: location)
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            body.writeString("see \(location)\n")
        }
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(
            Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
        )
        .whenFailure { _ in }
        if request.method != .HEAD { context.write(Self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        let keepAlive = request.isKeepAlive
        let channel = context.channel
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }
}
