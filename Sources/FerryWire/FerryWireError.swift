/// Why bytes were refused as FerryWire. Every case names what was wrong, so the log line that
/// closes a connection tells the operator what the peer sent.
public enum FerryWireError: Error, Hashable, Sendable, CustomStringConvertible {
    case badMagic(UInt32)
    case unsupportedVersion(UInt8)
    case unknownFlags(UInt16)
    case frameTooLarge(length: Int, limit: Int)
    case truncatedFrame(have: Int, need: Int)
    case unexpectedKind(expected: MessageKind, got: MessageKind)
    case malformedPayload(kind: MessageKind, reason: String)
    /// A TLS record where a frame should start: one end has the cluster's credentials and the
    /// other has none.
    case speaksTLS

    public var description: String {
        switch self {
        case .badMagic(let magic):
            "not a FerryWire frame: magic 0x\(String(magic, radix: 16)) instead of 0x46525259 (\"FRRY\"); is the peer speaking another protocol?"
        case .unsupportedVersion(let version):
            "FerryWire version \(version) is not supported (this build speaks version \(FrameHeader.currentVersion))"
        case .unknownFlags(let flags):
            "frame has unknown flag bits 0x\(String(flags, radix: 16))"
        case .frameTooLarge(let length, let limit):
            "frame payload of \(length) bytes exceeds the limit of \(limit) bytes"
        case .truncatedFrame(let have, let need):
            "connection ended inside a frame: \(have) of \(need) bytes arrived"
        case .unexpectedKind(let expected, let got):
            "expected a \(expected) message, got \(got)"
        case .malformedPayload(let kind, let reason):
            "malformed \(kind) payload: \(reason)"
        case .speaksTLS:
            "the peer speaks TLS: one end has the cluster's credentials and the other has none"
        }
    }
}
