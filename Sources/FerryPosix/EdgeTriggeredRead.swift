import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// What one read of an edge-triggered socket found.
public enum EdgeReadResult { case data, end, wouldBlock, failed }

extension EdgeReadiness {
    /// Reads up to `size` bytes of socket `fd` onto the end of `buffer`, unless the socket is
    /// known to have nothing: a read that came back short emptied it, and whatever arrives next
    /// brings a new edge. Shared by Ferry's epoll loops (the l7 switch, the file server, the kv service).
    public mutating func read(_ fd: CInt, into buffer: inout ByteBuffer, size: Int) -> EdgeReadResult {
        guard self.readable else { return .wouldBlock }
        buffer.reserveCapacity(minimumWritableBytes: size)
        let count = buffer.withUnsafeMutableWritableBytes { bytes in
            Glibc.read(fd, bytes.baseAddress, min(bytes.count, size))
        }
        if count > 0 {
            buffer.moveWriterIndex(forwardBy: count)
            // A short read drained the socket, unless the peer's close came with the data: that
            // edge is spent, and only another read finds the end.
            if count < size, !self.peerClosed { self.readable = false }
            return .data
        }
        if count == 0 { return .end }
        guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else { return .failed }
        self.readable = false
        return .wouldBlock
    }
}
