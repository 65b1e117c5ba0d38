import CFerryLinux
import FerryPosix
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Writes a response to a non-blocking socket from a thread that may block: waits for the client
/// to drain, but wakes every few milliseconds to notice a cancel.
struct SocketWriter {
    /// Why a write stopped before its end.
    enum Stop: Error, CustomStringConvertible {
        case cancelled
        case failed(PosixError)
        case clientGone(String)
        /// The client took no data for the stall timeout.
        case stalled(seconds: Int32)

        var description: String {
            switch self {
            case .cancelled: "cancelled"
            case .failed(let error): error.description
            case .clientGone(let reason): reason
            case .stalled(let seconds): "the client took no data for \(seconds) s"
            }
        }
    }

    let descriptor: Int32
    let flag: CancellationFlag
    /// Whether a cancel stops a write in the middle; chunked bodies finish the chunk they are in.
    var stopsMidWrite = true
    /// A client that takes no bytes for this long is given up on.
    let stallTimeoutMilliseconds: Int32

    /// Writes all of `buffer`; with `more`, tells the kernel more follows at once (MSG_MORE), so
    /// that a head and the body sent after it can leave in one segment.
    /// - Throws: ``Stop``.
    func write(_ buffer: ByteBuffer, more: Bool = false) throws {
        var offset = 0
        let flags = Int32(MSG_NOSIGNAL) | (more ? Int32(MSG_MORE) : 0)
        try buffer.withUnsafeReadableBytes { bytes in
            while offset < bytes.count {
                let sent = send(self.descriptor, bytes.baseAddress! + offset, bytes.count - offset, flags)
                if sent >= 0 {
                    offset += sent
                } else {
                    try self.waitAfterFailure("send")
                }
            }
        }
    }

    /// Writes `length` bytes of `file` from `offset` with sendfile, checking for a cancel between calls.
    func writeFile(_ file: OpenFile, offset: Int, length: Int) throws {
        var position = off_t(offset)
        let end = off_t(offset + length)
        while position < end {
            if self.stopsMidWrite, self.flag.isCancelled { throw Stop.cancelled }
            let sent = sendfile(self.descriptor, file.descriptor, &position, min(Int(end - position), 1 << 20))
            if sent == 0 { throw Stop.clientGone("file shrank while it was being sent") }
            if sent < 0 { try self.waitAfterFailure("sendfile") }
        }
    }

    /// Waits for room when the socket is full; throws for any other failure or a cancel.
    private func waitAfterFailure(_ operation: String) throws {
        let code = errno
        guard code == EAGAIN || code == EINTR else { throw Stop.failed(.system(operation, errno: code)) }
        var waited: Int32 = 0
        while waited < self.stallTimeoutMilliseconds {
            if self.stopsMidWrite, self.flag.isCancelled { throw Stop.cancelled }
            var pollFD = pollfd(fd: self.descriptor, events: Int16(POLLOUT), revents: 0)
            if poll(&pollFD, 1, 20) > 0 {
                if pollFD.revents & Int16(POLLERR | POLLHUP) != 0 { throw Stop.clientGone("client went away") }
                return
            }
            waited += 20
        }
        throw Stop.stalled(seconds: self.stallTimeoutMilliseconds / 1000)
    }
}
