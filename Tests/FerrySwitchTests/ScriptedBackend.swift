import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// An HTTP backend whose every answer a test scripts: given the request as text (head and body),
/// it replies, hangs up, answers garbage or stays silent.
final class ScriptedBackend: Sendable {
    enum Action: Sendable {
        case reply(String)
        /// Writes the start of an answer, then closes: a backend that dies mid-answer.
        case replyThenHangUp(String)
        case hangUp
        case silence
    }

    let channel: Channel
    /// Connections accepted so far.
    let connections = NIOLockedValueBox(0)
    var port: Int { self.channel.localAddress!.port! }

    init(_ script: @escaping @Sendable (String) -> Action) async throws {
        let connections = self.connections
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                connections.withLockedValue { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(script: script))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func stop() async throws { try await self.channel.close() }

    /// Replies with the request it got as the body, so a test can see what the switch sent.
    static func echo() async throws -> ScriptedBackend {
        try await ScriptedBackend { request in
            .reply("HTTP/1.1 200 OK\r\nContent-Length: \(request.utf8.count)\r\n\r\n\(request)")
        }
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let script: @Sendable (String) -> Action
        var received = ""

        init(script: @escaping @Sendable (String) -> Action) { self.script = script }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = Self.unwrapInboundIn(data)
            self.received += bytes.readString(length: bytes.readableBytes) ?? ""
            while let request = self.takeRequest() {
                switch self.script(request) {
                case .reply(let text):
                    context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
                case .replyThenHangUp(let text):
                    context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(string: text))).whenComplete { _ in
                        context.close(promise: nil)
                    }
                    return
                case .hangUp:
                    context.close(promise: nil)
                    return
                case .silence:
                    return
                }
            }
        }

        /// One whole request off the front of what was received, framed by its Content-Length or
        /// a chunked body's last chunk.
        private func takeRequest() -> String? {
            guard let headEnd = self.received.range(of: "\r\n\r\n") else { return nil }
            let head = self.received[..<headEnd.upperBound].lowercased()
            var end = headEnd.upperBound
            if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                let length = Int(line.dropFirst(15).trimmingCharacters(in: .whitespaces))
            {
                guard self.received.utf8.distance(from: end, to: self.received.endIndex) >= length else { return nil }
                end = self.received.utf8.index(end, offsetBy: length)
            } else if head.contains("transfer-encoding: chunked") {
                // The last chunk, then trailers up to an empty line.
                let bodyStart = self.received.utf8.index(end, offsetBy: -2)
                guard let last = self.received.range(of: "\r\n0\r\n", range: bodyStart..<self.received.endIndex),
                    let blank = self.received.range(
                        of: "\r\n\r\n",
                        range: self.received.utf8.index(last.upperBound, offsetBy: -2)..<self.received.endIndex
                    )
                else { return nil }
                end = blank.upperBound
            }
            let request = String(self.received[..<end])
            self.received = String(self.received[end...])
            return request
        }
    }
}
