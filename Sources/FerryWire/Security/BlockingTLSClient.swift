import FerryPosix
import NIOCore
import NIOEmbedded

/// TLS with the cluster's credentials over a ``BlockingSocket``, for a process that asks one
/// question and exits: NIOSSL's client handler with the credentials' own context (so the same
/// checks as every FerryWire client: TLS 1.3, a certificate each way, only this cluster's
/// authority trusted), driven in an `EmbeddedChannel` with no event loop or thread to start.
public final class BlockingTLSClient: BlockingStream {
    private let socket: BlockingSocket
    private let channel = EmbeddedChannel()
    /// Decrypted bytes not yet received.
    private var plaintext = ByteBuffer()
    /// Where bytes from the socket land before they are decrypted.
    private var ciphertext = [UInt8](repeating: 0, count: 16 * 1024)

    /// Starts the handshake over `socket` (which the caller still closes).
    public init(over socket: BlockingSocket, credentials: ClusterCredentials) throws {
        self.socket = socket
        try self.channel.pipeline.syncOperations.addClientTLS(credentials)
        // Active, so that the handler sends its hello; the address is not used.
        try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try self.sendWhatTLSWrote()
    }

    /// Encrypts and sends every byte of `bytes` (after the handshake, which this waits for).
    public func send(_ bytes: UnsafeRawBufferPointer) throws {
        self.channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil)
        try self.channel.throwIfErrorCaught()
        try self.sendWhatTLSWrote()
    }

    /// Fills the whole of `buffer` with decrypted bytes.
    /// - Throws: the socket's ``PosixError``, or NIOSSL's error when the peer is not a member.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws {
        while self.plaintext.readableBytes < buffer.count {
            let count = try self.ciphertext.withUnsafeMutableBytes { try self.socket.receiveSome(into: $0) }
            try self.channel.writeInbound(ByteBuffer(bytes: self.ciphertext[..<count]))
            // The handshake's answers, and whatever a sent request waited for.
            try self.sendWhatTLSWrote()
            while let decrypted = try self.channel.readInbound(as: ByteBuffer.self) {
                self.plaintext.writeImmutableBuffer(decrypted)
            }
        }
        self.plaintext.readWithUnsafeReadableBytes { bytes in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[..<buffer.count]))
            return buffer.count
        }
    }

    private func sendWhatTLSWrote() throws {
        while let record = try self.channel.readOutbound(as: ByteBuffer.self) {
            try record.withUnsafeReadableBytes { try self.socket.send($0) }
        }
    }
}
