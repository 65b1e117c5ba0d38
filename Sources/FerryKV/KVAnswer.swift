import FerryWire
import NIOCore

/// The answer to one request to the key-value service. The loops write a get's or a write's
/// answer straight into the connection's buffer, encoded once, with no buffer of its own; NIO's
/// pipeline (TLS) takes it as a frame.
enum KVAnswer: Sendable {
    case value(KVValue, requestID: UInt64)
    case written(KVWritten, requestID: UInt64)
    /// Any other answer: a list, a pong, a refusal.
    case frame(Frame)

    /// The answer to a write once the store has done with it.
    init(_ result: Result<KVWritten, any Error>, requestID: UInt64) {
        switch result {
        case .success(let written): self = .written(written, requestID: requestID)
        case .failure(let error): self = .frame(Frame(answering: error, requestID: requestID))
        }
    }

    func write(to buffer: inout ByteBuffer) {
        switch self {
        case .value(let value, let requestID): Frame.write(value, flags: .response, requestID: requestID, to: &buffer)
        case .written(let written, let requestID):
            Frame.write(written, flags: .response, requestID: requestID, to: &buffer)
        case .frame(let frame): frame.write(to: &buffer)
        }
    }

    var frame: Frame {
        switch self {
        case .value(let value, let requestID): Frame(value, flags: .response, requestID: requestID)
        case .written(let written, let requestID): Frame(written, flags: .response, requestID: requestID)
        case .frame(let frame): frame
        }
    }
}
