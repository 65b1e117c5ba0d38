import FerryHTTP
import FerryPosix
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Reading and writing an exchange's sockets, edge-triggered.
extension HTTPLoop {

    enum FlushResult { case moved, idle, failed }

    /// Reads a client's bytes through the loop's one read buffer and keeps only what came: a
    /// request is a few hundred bytes, and 10,000 idle connections must not hold 64 KiB each.
    func readClient(_ exchange: HTTPExchange) -> EdgeReadResult {
        self.scratch.clear()
        let result = exchange.clientReady.read(exchange.client, into: &self.scratch, size: Self.readSize)
        if result == .data { exchange.input.writeBuffer(&self.scratch) }
        return result
    }

    /// Writes the client's output and then the body passed on from a backend, in one call.
    func flushClient(_ exchange: HTTPExchange) -> FlushResult {
        guard exchange.passing.readableBytes > 0 else {
            return self.flush(&exchange.output, to: exchange.client, &exchange.clientReady)
        }
        guard exchange.clientReady.writable else { return .idle }
        let headCount = exchange.output.readableBytes
        let sent = exchange.output.withUnsafeReadableBytes { head in
            exchange.passing.withUnsafeReadableBytes { body in
                // Two iovecs side by side on the stack (a tuple's elements are laid out in order).
                var parts = (
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: head.baseAddress), iov_len: head.count),
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: body.baseAddress), iov_len: body.count)
                )
                return withUnsafeMutableBytes(of: &parts) { parts in
                    let first = parts.baseAddress!.assumingMemoryBound(to: iovec.self)
                    var message = msghdr()
                    message.msg_iov = first + (head.count == 0 ? 1 : 0)
                    message.msg_iovlen = head.count == 0 ? 1 : 2
                    return sendmsg(exchange.client, &message, CInt(MSG_NOSIGNAL))
                }
            }
        }
        guard sent > 0 else {
            guard sent < 0, errno != EAGAIN, errno != EWOULDBLOCK, errno != EINTR else {
                exchange.clientReady.writable = false
                return .idle
            }
            return .failed
        }
        let fromHead = min(sent, headCount)
        exchange.output.moveReaderIndex(forwardBy: fromHead)
        if exchange.output.readableBytes == 0 { exchange.output.clear() }
        exchange.passing.moveReaderIndex(forwardBy: sent - fromHead)
        if exchange.passing.readableBytes == 0 {
            // The backend's buffer is its own again: the next read reuses it without a copy.
            exchange.passing = ByteBuffer()
            if let upstream = exchange.upstream {
                if upstream.input.readableBytes == 0 {
                    upstream.input.clear()
                } else {
                    upstream.input.discardReadBytes()
                }
            }
        } else {
            exchange.clientReady.writable = false
        }
        return .moved
    }

    /// Writes what is waiting, unless the socket is known to be full. Once all of it is out, the
    /// buffer keeps its storage for what comes next, unless `keepingStorage` is false: a backend's
    /// buffer is the request head kept for a retry, and clearing shared storage allocates anew.
    func flush(
        _ buffer: inout ByteBuffer,
        to fd: CInt,
        _ ready: inout EdgeReadiness,
        keepingStorage: Bool = true
    ) -> FlushResult {
        guard buffer.readableBytes > 0, ready.writable else { return .idle }
        let sent = buffer.withUnsafeReadableBytes { bytes in
            send(fd, bytes.baseAddress, bytes.count, CInt(MSG_NOSIGNAL))
        }
        if sent > 0 {
            buffer.moveReaderIndex(forwardBy: sent)
            if buffer.readableBytes > 0 {
                ready.writable = false
            } else if keepingStorage {
                buffer.clear()
            } else {
                buffer = ByteBuffer()
            }
            return .moved
        }
        guard sent < 0, errno != EAGAIN, errno != EWOULDBLOCK, errno != EINTR else {
            ready.writable = false
            return .idle
        }
        return .failed
    }
}
