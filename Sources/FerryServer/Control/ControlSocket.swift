import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A running command's control socket: a Unix socket that takes one line per connection and
/// answers with text, then closes, like HAProxy's stats socket. Guests (`ferry guest run
/// --control`) and switches (`ferry switch --control`, `ferry up`) are steered through one.
public final class ControlSocket: Sendable {
    public let path: String
    private let channel: Channel

    private init(path: String, channel: Channel) {
        self.path = path
        self.channel = channel
    }

    /// Listens at `path`, replacing a stale socket there but nothing else; `handle` gets each
    /// request line and fulfils the promise with the answer.
    public static func listen(
        at path: String,
        handle: @escaping @Sendable (String, EventLoopPromise<String>) -> Void
    ) async throws -> ControlSocket {
        var status = stat()
        if lstat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFSOCK else {
                throw ControlError("\(path) exists and is not a socket; give --control a new path")
            }
            unlink(path)
        }
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RequestHandler(submit: handle))
                }
            }
            .bind(unixDomainSocketPath: path)
            .get()
        return ControlSocket(path: path, channel: channel)
    }

    /// Stops listening and removes the socket file.
    public func close() {
        try? self.channel.close().wait()
        unlink(self.path)
    }

    /// Sends one request line to the control socket at `path` and returns the answer;
    /// `runningCommand` names what should be listening there, for the error when nothing is.
    public static func request(_ line: String, at path: String, runningCommand: String) async throws -> String {
        let answer = NIOLockedValueBox("")
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AnswerCollector(answer: answer))
                    }
                }
                .connect(unixDomainSocketPath: path)
                .get()
        } catch {
            throw ControlError("cannot reach \(path) (\(error)); is '\(runningCommand)' running?")
        }
        try await channel.writeAndFlush(ByteBuffer(string: line + "\n"))
        try await channel.closeFuture.get()
        return answer.withLockedValue { $0 }.trimmingCharacters(in: .newlines)
    }

    public struct ControlError: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// Reads one line, hands it on, writes the answer and closes.
    private final class RequestHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let submit: (String, EventLoopPromise<String>) -> Void
        private var received = ""
        private var answered = false

        init(submit: @escaping (String, EventLoopPromise<String>) -> Void) { self.submit = submit }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = Self.unwrapInboundIn(data)
            guard !self.answered else { return }
            self.received += buffer.readString(length: buffer.readableBytes) ?? ""
            guard let newline = self.received.firstIndex(of: "\n") else {
                if self.received.utf8.count > 4096 { context.close(promise: nil) }
                return
            }
            self.answered = true
            let promise = context.eventLoop.makePromise(of: String.self)
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            promise.futureResult.whenSuccess { text in
                let context = loopBound.value
                context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(string: text + "\n"))).whenComplete { _ in
                    loopBound.value.close(promise: nil)
                }
            }
            self.submit(String(self.received[..<newline]), promise)
        }
    }

    private final class AnswerCollector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let answer: NIOLockedValueBox<String>
        init(answer: NIOLockedValueBox<String>) { self.answer = answer }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = Self.unwrapInboundIn(data)
            let text = buffer.readString(length: buffer.readableBytes) ?? ""
            self.answer.withLockedValue { $0 += text }
        }
    }
}
