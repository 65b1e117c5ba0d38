import FerryGuest
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The control socket of a running guest (`ferry guest run --control PATH`): a Unix socket that
/// takes one line per connection and answers one line, like HAProxy's stats socket.
///
///     checkpoint stop|leave-running PATH
///
/// asks for the guest's execution state at its next `ferry.checkpoint`, written to PATH; the
/// guest then stops there (to be restored elsewhere: migration) or carries on. The answer is
/// `ok checkpointed into PATH (N bytes)` or `error: ...`.
final class GuestControl: @unchecked Sendable {
    // Sendable: `pending`, `closed` and `channel` are guarded by `lock`.
    struct Request {
        var path: String
        var leaveRunning: Bool
        var answer: EventLoopPromise<String>
    }

    let path: String
    private let lock = NIOLock()
    private var channel: Channel?
    private var pending: Request?
    private var closed = false

    private init(path: String) { self.path = path }

    /// Listens at `path`, replacing a stale socket there but nothing else.
    static func listen(at path: String) async throws -> GuestControl {
        var status = stat()
        if lstat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFSOCK else {
                throw ControlError("\(path) exists and is not a socket; give --control a new path")
            }
            unlink(path)
        }
        let control = GuestControl(path: path)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RequestHandler(submit: control.submit))
                }
            }
            .bind(unixDomainSocketPath: path)
            .get()
        control.lock.withLock { control.channel = channel }
        return control
    }

    /// Whether a checkpoint is wanted: asked at each of the guest's checkpoint calls.
    var isRequested: Bool { self.lock.withLock { self.pending != nil } }

    /// The request a checkpoint was just taken for.
    func take() -> Request? {
        self.lock.withLock {
            defer { self.pending = nil }
            return self.pending
        }
    }

    /// Answers any waiting request with `reason`, refuses later ones, and removes the socket.
    func close(_ reason: String) {
        let waiting = self.lock.withLock {
            self.closed = true
            defer { self.pending = nil }
            return self.pending
        }
        waiting?.answer.succeed("error: \(reason)")
        try? self.lock.withLock({ self.channel })?.close().wait()
        unlink(self.path)
    }

    private func submit(_ line: String, answer: EventLoopPromise<String>) {
        let words = line.split(separator: " ", maxSplits: 2).map(String.init)
        guard words.count == 3, words[0] == "checkpoint", ["stop", "leave-running"].contains(words[1]) else {
            answer.succeed("error: unknown request '\(line)'; send: checkpoint stop|leave-running PATH")
            return
        }
        let refusal: String? = self.lock.withLock {
            if self.closed { return "the guest has finished" }
            if self.pending != nil { return "a checkpoint is already being taken" }
            self.pending = Request(path: words[2], leaveRunning: words[1] == "leave-running", answer: answer)
            return nil
        }
        if let refusal { answer.succeed("error: \(refusal)") }
    }

    /// Sends one request line to the control socket at `path` and returns the answer line.
    static func request(_ line: String, at path: String) async throws -> String {
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
            throw ControlError(
                "cannot reach a running guest at \(path) (\(error)); is 'ferry guest run --control \(path)' running?"
            )
        }
        try await channel.writeAndFlush(ByteBuffer(string: line + "\n"))
        try await channel.closeFuture.get()
        return answer.withLockedValue { $0 }.trimmingCharacters(in: .newlines)
    }

    struct ControlError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
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
