/// What a frame's payload is. Open-ended: later layers add kinds, and a peer that receives a kind
/// it does not know answers with ``ErrorMessage/Code/unknownKind`` instead of dropping the connection.
public struct MessageKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// An error answer; the payload is an ``ErrorMessage``.
    public static let error = MessageKind(rawValue: 0x01)
    /// A liveness probe; the payload is echoed back.
    public static let ping = MessageKind(rawValue: 0x02)
    /// The answer to a ping.
    public static let pong = MessageKind(rawValue: 0x03)
    /// Cancel a request in progress on a server; the payload is a ``CancelRequest``.
    public static let cancel = MessageKind(rawValue: 0x10)
    /// The answer to a cancel; the payload is a ``CancelResult``.
    public static let cancelResult = MessageKind(rawValue: 0x11)
    /// Ask a server for its counters; empty payload.
    public static let stats = MessageKind(rawValue: 0x12)
    /// The answer to ``stats``; the payload is a ``ServerStats``.
    public static let statsResult = MessageKind(rawValue: 0x13)

    public var description: String {
        switch self {
        case .error: "error"
        case .ping: "ping"
        case .pong: "pong"
        case .cancel: "cancel"
        case .cancelResult: "cancel-result"
        case .stats: "stats"
        case .statsResult: "stats-result"
        default: "kind 0x" + String(self.rawValue, radix: 16)
        }
    }
}
