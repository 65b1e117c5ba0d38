import CFerryLinux
import FerryHTTP
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Sending a file body: by sendfile straight from the page cache when it holds the pages, else
/// copied through the loop's buffer by reads that never wait for the disk.
extension FileLoop {
    /// Pieces sent per turn before the loop's other connections get theirs.
    static let piecesPerTurn = 16

    /// The most one sendfile call is given.
    static let sendfileWindow = 1 << 20

    /// Whether this kernel tells which pages of a file are cached (cachestat, Linux 6.5): only then
    /// can a body go by sendfile, which has no way to fail rather than wait for the disk.
    static let sendsFromPageCache: Bool = {
        ferry_range_cached(-1, 0, 1) == 0 || errno != ENOSYS
    }()

    /// Sends the transfer's next pieces while the client keeps up.
    /// - Returns: true when the transfer ended (the connection goes on to its next request);
    ///   false when it waits — for the client, the disk or its next turn — or was closed.
    func pump(_ connection: FileConnection) -> Bool {
        var budget = Self.piecesPerTurn
        while var transfer = connection.transfer {
            if connection.output.readableBytes > 0 {
                guard self.flush(connection) else { return false }
            }
            guard transfer.position < transfer.end else {
                self.end(transfer, of: connection, complete: true)
                return true
            }
            guard connection.ready.writable else { return false }
            guard budget > 0 else {
                self.requeue(connection)
                return false
            }
            budget -= 1
            let remaining = transfer.end - transfer.position
            if !transfer.framing.chunked {
                switch self.sendDirectly(connection, head: nil, transfer.file, transfer.position, remaining) {
                case .sent(let count):
                    connection.deadline.sendResumed()
                    transfer.position += count
                    connection.transfer = transfer
                    continue
                case .full:
                    self.stalled(connection)
                    return false
                case .failed:
                    self.close(connection)
                    return false
                case .fileEnded:
                    self.fileEndedEarly(connection)
                    return false
                case .notTried:
                    break
                }
            }
            guard let read = self.readPiece(connection, transfer, length: min(ResponseFraming.chunkSize, remaining))
            else { return false }
            transfer.position += read
            connection.transfer = transfer
            self.write(connection, &self.outgoing)
        }
        return true
    }

    /// Ends the connection's transfer: a chunked body with its last chunk, which says whether it
    /// is complete or was cut short by a cancel.
    func end(_ transfer: FileConnection.Transfer, of connection: FileConnection, complete: Bool) {
        connection.transfer = nil
        if transfer.framing.chunked {
            var last = ResponseFraming.lastChunk(complete: complete)
            self.write(connection, &last)
        }
        self.finish(
            connection,
            requestID: transfer.requestID,
            flag: transfer.flag,
            status: 200,
            keepAlive: transfer.framing.keepAlive
        )
    }

    /// Reads the transfer's next piece into ``outgoing`` (framed as a chunk when the body is
    /// chunked) without waiting for the disk: `nil` when it parked the connection or closed it.
    private func readPiece(_ connection: FileConnection, _ transfer: FileConnection.Transfer, length: Int) -> Int? {
        // A chunk's size line is known only after the read: a chunk is read into the read buffer first.
        let read =
            transfer.framing.chunked
            ? Self.readWithoutWaiting(transfer, length, into: &self.scratch)
            : Self.readWithoutWaiting(transfer, length, into: &self.outgoing)
        if read < 0 {
            if errno == EAGAIN {
                self.park(connection)
            } else {
                self.responder.logger.warning(
                    "connection \(connection.id): reading the file failed: \(String(cString: strerror(errno)))"
                )
                self.close(connection)
            }
            return nil
        }
        if read == 0 {
            self.fileEndedEarly(connection)
            return nil
        }
        if transfer.framing.chunked {
            self.outgoing.clear()
            self.outgoing.writeString(String(read, radix: 16))
            self.outgoing.writeStaticString("\r\n")
            self.outgoing.writeBuffer(&self.scratch)
            self.outgoing.writeStaticString("\r\n")
        }
        return read
    }

    /// Replaces `buffer`'s bytes with up to `length` of the transfer's next bytes, if the page
    /// cache has them (RWF_NOWAIT): the count, or -1 with errno.
    private static func readWithoutWaiting(
        _ transfer: FileConnection.Transfer,
        _ length: Int,
        into buffer: inout ByteBuffer
    ) -> Int {
        buffer.clear(minimumCapacity: length)
        let read = buffer.withUnsafeMutableWritableBytes { bytes in
            ferry_pread_nowait(transfer.file.descriptor, bytes.baseAddress!, length, off_t(transfer.position))
        }
        if read > 0 { buffer.moveWriterIndex(forwardBy: read) }
        return read
    }

    enum DirectSend {
        /// Not tried: the page cache does not hold every page (or the kernel cannot tell).
        case notTried
        /// Bytes the socket took, head first.
        case sent(Int)
        /// The socket took nothing: it is full.
        case full
        /// The socket failed: the client is gone.
        case failed
        /// The file is shorter than the answer said (truncated while being served).
        case fileEnded
    }

    /// Sends `head` (when given; held back with MSG_MORE so it leaves with the body) and the file's
    /// bytes by sendfile straight to the socket: no copy through Ferry's memory, nginx's `sendfile
    /// on; tcp_nopush on`. Only when the page cache holds every page, so the loop never waits for
    /// the disk.
    func sendDirectly(
        _ connection: FileConnection,
        head: ByteBuffer?,
        _ file: OpenFile,
        _ offset: Int,
        _ length: Int
    ) -> DirectSend {
        let window = min(length, Self.sendfileWindow)
        guard Self.sendsFromPageCache, ferry_range_cached(file.descriptor, off_t(offset), window) == 1 else {
            return .notTried
        }
        var ended: Int32 = 0
        var error: Int32 = 0
        let send = { (bytes: UnsafeRawBufferPointer) -> Int in
            let count = ferry_send_head_and_file(
                connection.fd,
                bytes.baseAddress,
                bytes.count,
                file.descriptor,
                off_t(offset),
                window,
                &ended
            )
            error = errno
            return count
        }
        let count = head.map { $0.withUnsafeReadableBytes(send) } ?? send(UnsafeRawBufferPointer(start: nil, count: 0))
        if count > 0 { return .sent(count) }
        if ended != 0 { return .fileEnded }
        return error == EAGAIN || error == EWOULDBLOCK || error == EINTR ? .full : .failed
    }

    /// The file shrank while its answer was going out: the length the head gave cannot be met.
    func fileEndedEarly(_ connection: FileConnection) {
        self.responder.logger.warning(
            "connection \(connection.id): the file ended before the length its answer gave; closing the connection"
        )
        self.close(connection)
    }
}
