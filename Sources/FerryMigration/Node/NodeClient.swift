import FerryEndpoints
import FerryWire
import Logging
import NIOCore

/// A connection to a node's FerryWire port: what `ferry spawn`, `ps`, `migrate` and the rest, and
/// other nodes, ask it.
public struct NodeClient: Sendable {
    let wire: WireClient
    public let endpoint: ServiceEndpoint

    /// Nothing answers at the node's address.
    public struct Unreachable: Error, CustomStringConvertible {
        public let endpoint: ServiceEndpoint
        public let reason: String
        /// The connection was refused: nothing listens there (the node is not running).
        public var refused: Bool { self.reason.contains("refused") }

        public var description: String { "cannot reach the node at \(self.endpoint): \(self.reason)" }
    }

    public static func connect(to endpoint: ServiceEndpoint, timeout: Duration = .seconds(5)) async throws -> NodeClient
    {
        do {
            let wire = try await WireClient.connect(
                host: endpoint.host,
                port: endpoint.port,
                maxPayloadLength: NodeLimits.maxPayloadLength
            )
            return NodeClient(wire: wire, endpoint: endpoint)
        } catch WireClientError.cannotConnect(_, let reason) {
            throw Unreachable(endpoint: endpoint, reason: reason)
        }
    }

    /// One request, one answer; an error answer is thrown as its ``ErrorMessage``.
    public func request(_ request: NodeRequest, timeout: Duration = .seconds(30)) async throws -> NodeReply {
        try await self.measuredRequest(request, timeout: timeout).reply
    }

    /// One request, one answer, and the answer's size as it came: its frame's header and payload.
    public func measuredRequest(
        _ request: NodeRequest,
        timeout: Duration = .seconds(30)
    ) async throws -> (reply: NodeReply, bytes: Int) {
        let frame = try await self.wire.call(
            NodeRequestMessage(request),
            timeout: .nanoseconds(Int64(clamping: timeout.components.seconds) * 1_000_000_000)
        )
        return (try frame.decode(as: NodeReplyMessage.self).reply, FrameHeader.size + Int(frame.header.payloadLength))
    }

    /// One request, several answers (a wait, logs as they come, a move's progress).
    public func stream(_ request: NodeRequest) -> AsyncThrowingStream<NodeReply, any Error> {
        let frames = self.wire.subscribe(NodeRequestMessage(request))
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await frame in frames {
                        continuation.yield(try frame.decode(as: NodeReplyMessage.self).reply)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    public func close() async { await self.wire.close() }
}

/// Limits of the node protocol.
public enum NodeLimits {
    /// Frames carry modules (a few MiB, base64 in JSON) and output chunks.
    public static let maxPayloadLength = 64 << 20
}
