import FerryPosix
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOSSL
import NIOTLS

/// TLS with the cluster's credentials over a ``BlockingSocket``, for a process that asks one
/// question and exits: NIOSSL's client handler with the credentials' own context (so the same
/// checks as every FerryWire client: TLS 1.3, a certificate each way, only this cluster's
/// authority trusted), driven in an `EmbeddedChannel` with no event loop or thread to start.
/// Used on the thread that made it.
public final class BlockingTLSClient: BlockingStream {
    private let socket: BlockingSocket
    private let channel = EmbeddedChannel()
    private let handshake = HandshakeWatcher()
    /// Decrypted bytes not yet received.
    private var plaintext = ByteBuffer()
    /// Where bytes from the socket land before they are decrypted.
    private var ciphertext = [UInt8](repeating: 0, count: 16 * 1024)

    /// Makes the handshake over `socket` (which the caller still closes): once this returns, the
    /// peer has shown a certificate from the cluster's authority.
    /// - Throws: the socket's ``PosixError``, or NIOSSL's error when the peer is not a member.
    public init(over socket: BlockingSocket, credentials: ClusterCredentials) throws {
        self.socket = socket
        try self.channel.pipeline.syncOperations.addClientTLS(credentials)
        try self.channel.pipeline.syncOperations.addHandler(self.handshake)
        // Active, so that the handler sends its hello; the address is not used.
        try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try self.sendWhatTLSWrote()
        while !self.handshake.completed { try self.receiveRecords() }
    }

    /// Encrypts and sends every byte of `bytes`.
    public func send(_ bytes: UnsafeRawBufferPointer) throws {
        let written = self.channel.eventLoop.makePromise(of: Void.self)
        self.channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: written)
        try self.channel.throwIfErrorCaught()
        try self.sendWhatTLSWrote()
        // After the handshake a write is encrypted and sent at once; one that is not (a session
        // that ended) fails here rather than unsent.
        let outcome = NIOLockedValueBox<Result<Void, any Error>?>(nil)
        written.futureResult.whenComplete { result in outcome.withLockedValue { $0 = result } }
        self.channel.embeddedEventLoop.run()
        switch outcome.withLockedValue({ $0 }) {
        case .success: return
        case .failure(let error): throw error
        case nil: throw ChannelError.ioOnClosedChannel
        }
    }

    /// Fills the whole of `buffer` with decrypted bytes.
    /// - Throws: the socket's ``PosixError``, or NIOSSL's error.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws {
        while self.plaintext.readableBytes < buffer.count { try self.receiveRecords() }
        self.plaintext.readWithUnsafeReadableBytes { bytes in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[..<buffer.count]))
            return buffer.count
        }
    }

    /// Feeds what the socket has to TLS, sends what TLS answers and keeps what it decrypted.
    private func receiveRecords() throws {
        let count = try self.ciphertext.withUnsafeMutableBytes { try self.socket.receiveSome(into: $0) }
        do {
            try self.channel.writeInbound(ByteBuffer(bytes: self.ciphertext[..<count]))
        } catch {
            // The alert that says why goes to the peer, for its log.
            try? self.sendWhatTLSWrote()
            throw error
        }
        try self.sendWhatTLSWrote()
        while let decrypted = try self.channel.readInbound(as: ByteBuffer.self) {
            self.plaintext.writeImmutableBuffer(decrypted)
        }
    }

    private func sendWhatTLSWrote() throws {
        while let record = try self.channel.readOutbound(as: ByteBuffer.self) {
            try record.withUnsafeReadableBytes { try self.socket.send($0) }
        }
    }
}

/// Notes the end of the handshake, which NIOSSL reports only once the peer's certificate passed.
private final class HandshakeWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private(set) var completed = false

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent { self.completed = true }
        context.fireUserInboundEventTriggered(event)
    }
}
