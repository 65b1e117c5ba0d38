import FerryPosix
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

extension SourceLimit {
    /// What a connection past its source's cap is told before it is closed.
    public static var refusalAnswer: ByteBuffer {
        HTTPStatus.serviceUnavailable.closingAnswer("too many connections from your address; close some")
    }

    /// Counts a new HTTP client connection from `source` against its cap; `false` when the
    /// source is at the cap, and then the caller answers ``refusalAnswer`` and closes. The first
    /// refusal per source is logged, not every one of a flood.
    public func admit(_ source: PeerAddress?, logger: Logger) -> Bool {
        guard case .refused(let first) = self.admit(source?.bytes ?? []) else { return true }
        if first {
            logger.warning(
                "refusing connections from \(source?.host ?? "an unknown address"): it holds \(self.maximum) already (raise --max-connections-per-source to allow more)"
            )
        }
        return false
    }

    /// ``admit(_:logger:)`` for a raw socket: a refused connection is answered without waiting
    /// (the socket's buffer takes so small an answer) and closed here.
    public func admit(client descriptor: Int32, from source: PeerAddress?, logger: Logger) -> Bool {
        guard !self.admit(source, logger: logger) else { return true }
        _ = Self.refusalAnswer.withUnsafeReadableBytes {
            send(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
        }
        close(descriptor)
        return false
    }
}
