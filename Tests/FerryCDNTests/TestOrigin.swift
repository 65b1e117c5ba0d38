import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// An origin whose every answer the test chooses, and which counts what it is asked: real
/// sockets and real HTTP, misbehaving on purpose where a test wants it to.
final class TestOrigin: Sendable {
    enum Behaviour: Sendable {
        /// A whole answer: `headers` as given, then Content-Length and the body.
        case answer(status: Int, headers: [(String, String)], body: [UInt8])
        /// Like `answer`, but only once `release()` is called.
        case held(status: Int, headers: [(String, String)], body: [UInt8])
        /// Bytes that are not HTTP.
        case garbage
        /// Announces `announced` body bytes, sends `sent`, and closes.
        case cutShort(announced: Int, sent: Int)
        /// Reads the request and never answers.
        case silent
    }

    struct Request: Sendable {
        var method: String
        var uri: String
        var headers: [(String, String)]

        func header(_ name: String) -> String? {
            self.headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    private struct State {
        var behaviours: [String: Behaviour] = [:]
        var requests: [Request] = []
        var held: [@Sendable () -> Void] = []
        var released = false
    }

    private let state = NIOLockedValueBox(State())
    private let channel: Channel
    let port: Int

    private init(channel: Channel) {
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
    }

    static func start() async throws -> TestOrigin {
        let box = OriginBox()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes))
                    )
                    try channel.pipeline.syncOperations.addHandler(OriginHandler(origin: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let origin = TestOrigin(channel: channel)
        box.origin.withLockedValue { $0 = origin }
        return origin
    }

    func stop() async {
        try? await self.channel.close()
    }

    /// How it answers `path` from now on (404 for paths never set).
    func set(_ path: String, _ behaviour: Behaviour) {
        self.state.withLockedValue { $0.behaviours[path] = behaviour }
    }

    /// Lets every held answer go, and answers later ones at once.
    func release() {
        let held = self.state.withLockedValue { state in
            state.released = true
            defer { state.held = [] }
            return state.held
        }
        for answer in held { answer() }
    }

    /// The requests it has been asked for `path`.
    func requests(_ path: String) -> [Request] {
        self.state.withLockedValue { $0.requests.filter { $0.uri == path } }
    }

    fileprivate func handle(_ request: Request, write: @escaping @Sendable (Behaviour) -> Void) {
        let behaviour: Behaviour? = self.state.withLockedValue { state in
            state.requests.append(request)
            let behaviour =
                state.behaviours[request.uri] ?? .answer(status: 404, headers: [], body: Array("no such path\n".utf8))
            if case .held = behaviour, !state.released {
                state.held.append { write(behaviour) }
                return nil
            }
            return behaviour
        }
        if let behaviour { write(behaviour) }
    }
}

private final class OriginBox: Sendable {
    let origin = NIOLockedValueBox<TestOrigin?>(nil)
}

private final class OriginHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = ByteBuffer

    private let origin: OriginBox
    private var head: HTTPRequestHead?

    init(origin: OriginBox) {
        self.origin = origin
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head = self.head, let origin = self.origin.origin.withLockedValue({ $0 }) else { return }
            let request = TestOrigin.Request(
                method: "\(head.method)",
                uri: head.uri,
                headers: head.headers.map { ($0.name, $0.value) }
            )
            let channel = context.channel
            origin.handle(request) { behaviour in
                channel.eventLoop.execute { Self.write(behaviour, on: channel) }
            }
        }
    }

    private static func write(_ behaviour: TestOrigin.Behaviour, on channel: Channel) {
        var buffer = channel.allocator.buffer(capacity: 256)
        switch behaviour {
        case .answer(let status, let headers, let body), .held(let status, let headers, let body):
            buffer.writeString("HTTP/1.1 \(status) \(HTTPResponseStatus(statusCode: status).reasonPhrase)\r\n")
            for (name, value) in headers { buffer.writeString("\(name): \(value)\r\n") }
            buffer.writeString("Content-Length: \(body.count)\r\n\r\n")
            buffer.writeBytes(body)
            channel.writeAndFlush(buffer, promise: nil)
        case .garbage:
            buffer.writeString("this is not HTTP at all\r\n\r\n")
            channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
        case .cutShort(let announced, let sent):
            buffer.writeString("HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: \(announced)\r\n\r\n")
            buffer.writeBytes([UInt8](repeating: 0x61, count: sent))
            channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
        case .silent:
            break
        }
    }
}
