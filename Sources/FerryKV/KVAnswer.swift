import FerryWire
import NIOCore

/// The answer to one request to the key-value service. The loops write a get's or a write's
/// answer straight into the connection's buffer, encoded once, with no buffer of its own.
enum KVAnswer: Sendable {
    /// A get's value or a write's outcome, encoded where it is written.
    case message(any WireMessage, requestID: UInt64)
    /// Any other answer: a list, a pong, a refusal.
    case frame(Frame)

    /// The answer to a write once the store has done with it.
    init(_ result: Result<KVWritten, any Error>, requestID: UInt64) {
        switch result {
        case .success(let written): self = .message(written, requestID: requestID)
        case .failure(let error): self = .frame(Frame(answering: error, requestID: requestID))
        }
    }

    func write(to buffer: inout ByteBuffer) {
        switch self {
        case .message(let message, let requestID):
            Frame.write(message, flags: .response, requestID: requestID, to: &buffer)
        case .frame(let frame): frame.write(to: &buffer)
        }
    }
}
