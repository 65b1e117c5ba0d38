import NIOCore
import NIOEmbedded
import NIOSSL

/// TLS with the cluster's credentials on one connection that an epoll loop of Ferry's own
/// accepted (the kv service's): NIOSSL's server handler with the credentials' context (the same
/// checks as every FerryWire server: TLS 1.3, a certificate from the cluster's authority), driven
/// in an `EmbeddedChannel` on the loop's thread, so that TLS costs its record layer and no wake-up
/// or hop between threads. The loop reads and sends the socket's bytes; this turns them into
/// plaintext and back. Used only on the thread that made it.
public final class TLSServerSession {
    let channel = EmbeddedChannel()

    /// - Throws: NIOSSL's error when the credentials' context cannot be made.
    public init(credentials: ClusterCredentials) throws {
        do {
            try self.channel.pipeline.syncOperations.addServerTLS(credentials)
            // Active, as an accepted connection is: the handler then waits for the client's hello.
            try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        } catch {
            self.end()
            throw error
        }
    }

    /// The session has ended: the peer sent its close_notify (answered in the records sent since),
    /// or a record failed.
    public var isClosed: Bool { !self.channel.isActive }

    /// Decrypts what the socket gave (all of `ciphertext`), adding the plaintext to `plaintext`
    /// and what TLS answers (the handshake's records, an alert) to `records`, for the socket.
    ///
    /// - Throws: NIOSSL's error when the peer is refused or a record fails; the alert that says
    ///   why is in `records` by then.
    public func open(
        _ ciphertext: inout ByteBuffer,
        into plaintext: inout ByteBuffer,
        records: inout ByteBuffer
    ) throws {
        defer { self.take(into: &records) }
        try self.channel.writeInbound(ciphertext)
        ciphertext.moveReaderIndex(to: ciphertext.writerIndex)
        while var decrypted = try self.channel.readInbound(as: ByteBuffer.self) {
            plaintext.writeBuffer(&decrypted)
        }
    }

    /// Encrypts all of `plaintext` (held back by TLS until the handshake is done), adding the
    /// records to `records`.
    public func seal(_ plaintext: inout ByteBuffer, into records: inout ByteBuffer) throws {
        defer { self.take(into: &records) }
        self.channel.writeAndFlush(plaintext, promise: nil)
        plaintext.moveReaderIndex(to: plaintext.writerIndex)
        self.channel.embeddedEventLoop.run()
        try self.channel.throwIfErrorCaught()
        // A record that could not be written closes the session without an error of its own.
        guard self.channel.isActive else { throw ChannelError.ioOnClosedChannel }
    }

    /// Tears the session down once its connection has closed. Until an `EmbeddedChannel` is
    /// closed it and its pipeline hold each other (with the handler's TLS state, tens of KiB), so
    /// a session only dropped would stay in memory. Closed at its core, not through the pipeline,
    /// where the handler would hold the close for the peer's close_notify.
    public func end() {
        self.channel._channelCore.close0(error: ChannelError.eof, mode: .all, promise: nil)
        // The pipeline lets go of its handlers in a task.
        self.channel.embeddedEventLoop.run()
    }

    private func take(into records: inout ByteBuffer) {
        while var record = try? self.channel.readOutbound(as: ByteBuffer.self) {
            records.writeBuffer(&record)
        }
    }
}
