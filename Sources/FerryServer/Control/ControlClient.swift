import FerryWire
import Logging
import NIOCore
import NIOPosix

/// A client for a server's control endpoint: one FerryWire request, one answer.
public struct ControlClient: Sendable {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Asks the server to cancel request `requestID` of connection `connectionID`.
    public func cancel(connectionID: UInt64, requestID: UInt64) async throws -> CancelResult.Outcome {
        try await self.call(CancelRequest(connectionID: connectionID, requestID: requestID)).decode(
            as: CancelResult.self
        ).outcome
    }

    /// The server's counters.
    public func stats() async throws -> ServerStats {
        try await self.call(StatsRequest()).decode(as: ServerStats.self)
    }

    /// Sends one message and returns the answering frame.
    public func call<Message: WireMessage>(_ message: Message) async throws -> Frame {
        let logger = Logger(label: "ferry.control-client")
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: self.host, port: self.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addFrameCodec(logger: logger)
                    return try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(Frame(message, requestID: 1))
            for try await frame in inbound where frame.header.requestID == 1 {
                return frame
            }
            throw ErrorMessage(
                code: .internalError,
                message: "the control endpoint at \(self.host):\(self.port) closed the connection without answering"
            )
        }
    }
}
