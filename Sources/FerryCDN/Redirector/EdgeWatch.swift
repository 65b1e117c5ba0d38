import FerryEndpoints
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// One idle TCP connection held to every edge that is up: when the edge's process dies, its
/// kernel closes the connection and the redirector takes the edge out of its answers at once,
/// not at the next check (HAProxy's `observe layer4` reads failures off live traffic the same
/// way). A host that vanishes without closing anything is still found by the checks.
///
/// A live edge closes the connection too, at its header timeout (it is a client that sends
/// nothing): so an ended connection is made again at once, and only an edge that refuses it (no
/// process listens) or does not answer within a second is lost.
final class EdgeWatch: Sendable {
    private struct State {
        var channels: [String: Channel] = [:]
        /// How many times each edge's connection ended and was made again.
        var renewals: [String: Int] = [:]
        /// Closed: a connection made after that is let go at once.
        var stopped = false
    }

    private let state = NIOLockedValueBox(State())
    /// Called with the edge's name when its connection ends.
    private let lost = NIOLockedValueBox<(@Sendable (String) -> Void)?>(nil)

    /// Says whom to tell of an edge whose connection ended.
    func onLost(_ handler: @escaping @Sendable (String) -> Void) {
        self.lost.withLockedValue { $0 = handler }
    }

    /// Holds a connection to each edge in `up` that has none; lets go of the others.
    func follow(_ up: [RedirectorConfiguration.Edge]) {
        let names = Set(up.map(\.name))
        let dropped = self.state.withLockedValue { state in
            let dropped = state.channels.filter { !names.contains($0.key) }
            for name in dropped.keys { state.channels[name] = nil }
            return Array(dropped.values)
        }
        for channel in dropped { channel.close(promise: nil) }
        for edge in up where self.state.withLockedValue({ $0.channels[edge.name] == nil }) {
            self.connect(edge, again: false)
        }
    }

    /// `again`: the edge's connection just ended, and whether this one is made decides whether
    /// the edge is lost.
    private func connect(_ edge: RedirectorConfiguration.Edge, again: Bool) {
        let state = self.state
        ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(1))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectionEnd {
                            let ours = state.withLockedValue { state in
                                guard state.channels[edge.name] === channel else { return false }
                                state.channels[edge.name] = nil
                                return true
                            }
                            if ours { self.connect(edge, again: true) }
                        }
                    )
                }
            }
            .connect(host: edge.address.host, port: edge.address.port)
            .whenComplete { result in
                guard case .success(let channel) = result else {
                    if again { self.lost.withLockedValue { $0 }?(edge.name) }
                    return
                }
                let kept = state.withLockedValue { state in
                    guard state.channels[edge.name] == nil, !state.stopped else { return false }
                    state.channels[edge.name] = channel
                    if again { state.renewals[edge.name, default: 0] += 1 }
                    return true
                }
                if !kept { channel.close(promise: nil) }
            }
    }

    /// How many times the connection to the edge named `name` ended and was made again.
    func renewals(of name: String) -> Int {
        self.state.withLockedValue { $0.renewals[name] ?? 0 }
    }

    /// Whether a connection to the edge named `name` is held now.
    func holds(_ name: String) -> Bool {
        self.state.withLockedValue { $0.channels[name] != nil }
    }

    func close() {
        let channels = self.state.withLockedValue { state in
            defer { state.channels = [:] }
            state.stopped = true
            return Array(state.channels.values)
        }
        for channel in channels { channel.close(promise: nil) }
    }
}

/// Reads nothing and says when the connection ends.
private final class ConnectionEnd: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let ended: () -> Void

    init(_ ended: @escaping () -> Void) {
        self.ended = ended
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.ended()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
