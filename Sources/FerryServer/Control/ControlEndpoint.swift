import FerryWire
import Logging
import NIOCore

/// The server's out-of-band endpoint: a separate port, speaking FerryWire, that takes
/// "cancel request R of connection C" (and `stats`, `ping`) while the data port is busy.
final class ControlEndpoint: Sendable {
    let channel: any Channel

    /// The bound address.
    var address: (host: String, port: Int) {
        (self.channel.localAddress?.ipAddress ?? "?", self.channel.localAddress?.port ?? 0)
    }

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Binds the control port.
    static func bind(
        host: String,
        port: Int,
        registry: ConnectionRegistry,
        metrics: ServerMetrics,
        logger: Logger
    ) async throws -> ControlEndpoint {
        let channel = try await bindFerryWireServer(
            host: host,
            port: port,
            maxPayloadLength: 64 * 1024,
            logger: logger
        ) { _ in ControlHandler(registry: registry, metrics: metrics, logger: logger) }
        return ControlEndpoint(channel: channel)
    }

    func close() async {
        try? await self.channel.close()
    }
}

/// Answers control frames; a bad payload gets an error frame and the connection stays.
final class ControlHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let registry: ConnectionRegistry
    private let metrics: ServerMetrics
    private let logger: Logger

    init(registry: ConnectionRegistry, metrics: ServerMetrics, logger: Logger) {
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        let requestID = frame.header.requestID
        let answer: Frame
        do {
            answer = try self.answer(frame)
        } catch {
            answer = Frame(answering: error, requestID: requestID)
        }
        context.writeAndFlush(Self.wrapOutboundOut(answer), promise: nil)
    }

    private func answer(_ frame: Frame) throws -> Frame {
        let requestID = frame.header.requestID
        switch frame.header.kind {
        case .cancel:
            let cancel = try frame.decode(as: CancelRequest.self)
            let cancelled = self.registry.cancel(connection: cancel.connectionID, requestID: cancel.requestID)
            self.logger.info(
                "control: cancel request \(cancel.requestID) of connection \(cancel.connectionID): \(cancelled ? "cancelled" : "not running")"
            )
            return Frame(
                CancelResult(outcome: cancelled ? .cancelled : .notRunning),
                flags: .response,
                requestID: requestID
            )
        case .stats:
            _ = try frame.decode(as: StatsRequest.self)
            let entries = self.metrics.snapshot + [("open_connections", Int64(self.registry.count))]
            return Frame(ServerStats(entries: entries), flags: .response, requestID: requestID)
        case .ping:
            return Frame(kind: .pong, flags: .response, requestID: requestID, payload: frame.payload)
        default:
            throw ErrorMessage(
                code: .unknownKind,
                message:
                    "the control endpoint does not handle \(frame.header.kind) messages; it takes cancel, stats and ping"
            )
        }
    }
}
