import FerryPosix
import Foundation
import NIOCore
import NIOPosix

/// One keep-alive HTTP/1.1 connection of the fetch client: a GET at a time, its answer read by
/// ``ResponseReader`` on the connection's event loop.
final class Connection: Sendable {
    enum Failure: Error, CustomStringConvertible {
        case closedBeforeAnswer
        case timedOut(Duration)

        var description: String {
            switch self {
            case .closedBeforeAnswer: "the server closed the connection before it answered"
            case .timedOut(let limit): "no whole answer within \(limit)"
            }
        }
    }

    let origin: String
    private let channel: any Channel
    private let handler: AnswerHandler

    private init(origin: String, channel: any Channel, handler: AnswerHandler) {
        self.origin = origin
        self.channel = channel
        self.handler = handler
    }

    static func open(_ origin: String, group: any EventLoopGroup) async throws -> Connection {
        let parts = origin.split(separator: ":")
        let host = String(parts.first ?? "")
        let port = parts.count > 1 ? Int(parts[1]) ?? 80 : 80
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(5))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AnswerHandler())
                    }
                }
                .connect(host: host, port: port)
                // Found on the event loop as the connect completes: a task resumed later may find
                // the connection already closed by the server's header timeout, its handler gone.
                .flatMap { channel in channel.pipeline.handler(type: AnswerHandler.self).map { (channel, $0) } }
                .get()
            return Connection(origin: origin, channel: channel.0, handler: channel.1)
        } catch {
            let text = "\(error)"
            let reason =
                text.contains("refused")
                ? "connection refused"
                : text.contains("imed out")
                    ? "connection timed out" : text.contains("UnknownHost") ? "no such host (DNS)" : text
            throw PageFetcher.Failure.unreachable(origin, reason: reason)
        }
    }

    func get(_ url: URL, timeout: Duration) async throws -> FetchedResponse {
        let loop = self.channel.eventLoop
        let promise = loop.makePromise(of: FetchedResponse.self)
        var request = ByteBuffer()
        request.writeString(
            "GET \(url.target) HTTP/1.1\r\nHost: \(url.host ?? "")\(url.port.map { ":\($0)" } ?? "")\r\nUser-Agent: ferry-fetch\r\nAccept: */*\r\n\r\n"
        )
        let handler = self.handler
        let channel = self.channel
        loop.execute {
            // A connection the server closed while it waited (its header or idle timeout) is
            // reported as such at once, not after the whole timeout: the caller opens another.
            guard channel.isActive else {
                promise.fail(Failure.closedBeforeAnswer)
                return
            }
            handler.waiting = promise
            channel.writeAndFlush(request).whenFailure { _ in
                guard let waiting = handler.waiting, waiting.futureResult === promise.futureResult else { return }
                handler.waiting = nil
                waiting.fail(Failure.closedBeforeAnswer)
            }
        }
        let deadline = loop.scheduleTask(in: .nanoseconds(Int64(timeout.wholeNanoseconds))) {
            promise.fail(Failure.timedOut(timeout))
            channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        return try await promise.futureResult.get()
    }

    func close() async {
        try? await self.channel.close()
    }
}

/// Feeds the connection's bytes to the reader and completes the waiting GET with each answer.
final class AnswerHandler: ChannelInboundHandler, @unchecked Sendable {
    // Sendable: touched only on its channel's event loop (the GET sets `waiting` through it).
    typealias InboundIn = ByteBuffer

    private var reader = ResponseReader()
    var waiting: EventLoopPromise<FetchedResponse>?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.reader.feed(Self.unwrapInboundIn(data))
        do {
            while let answer = try self.reader.next() {
                self.waiting?.succeed(answer)
                self.waiting = nil
            }
        } catch {
            self.waiting?.fail(error)
            self.waiting = nil
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let answer = self.reader.closed() {
            self.waiting?.succeed(answer)
        } else {
            self.waiting?.fail(Connection.Failure.closedBeforeAnswer)
        }
        self.waiting = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.waiting?.fail(error)
        self.waiting = nil
        context.close(promise: nil)
    }
}
