import FerryWire

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

    /// Sends one message over a new connection and returns the answering frame.
    public func call<Message: WireMessage>(_ message: Message) async throws -> Frame {
        let client = try await WireClient.connect(host: self.host, port: self.port)
        do {
            let answer = try await client.call(message)
            await client.close()
            return answer
        } catch {
            await client.close()
            throw error
        }
    }
}
