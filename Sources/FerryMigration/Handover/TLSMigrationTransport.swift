import Dispatch
import FerryWire
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// TLS 1.3 with the cluster's certificates over a migration connection, so that only a member
/// can move a process in, and memory crosses the network encrypted. The connected socket is
/// handed to a NIO channel with swift-nio-ssl in front, and the move's thread blocks on it.
/// Received bytes wait in a buffer of at most ``highWater`` bytes: past it the channel stops
/// reading, so that a target that restores slowly holds back a fast source (as TCP does for the
/// plain transport) rather than buffering its memory.
final class TLSMigrationTransport: MigrationTransport, @unchecked Sendable {
    // Sendable: a Channel is thread-safe, and the reader's state is behind its condition.
    private let channel: any Channel
    private let reader: Reader
    private let peer: String
    private let timeout: Duration

    static let highWater = 8 << 20
    /// Memory goes to the channel a piece at a time, one piece in flight behind the one written.
    static let piece = 1 << 20

    /// TLS over `fd` (which this now owns), as the server when `isServer` (the migration
    /// port's side) or the client, once the handshake is through: a peer without a certificate
    /// from this cluster's authority is refused here.
    init(fd: Int32, isServer: Bool, credentials: ClusterCredentials, peer: String, timeout: Duration) throws {
        let reader = Reader()
        self.reader = reader
        self.peer = peer
        self.timeout = timeout
        do {
            self.channel = try ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        if isServer {
                            try pipeline.addServerTLS(credentials)
                        } else {
                            try pipeline.addClientTLS(credentials)
                        }
                        try pipeline.addHandler(reader)
                    }
                }
                .withConnectedSocket(fd).wait()
        } catch {
            throw MigrationError.transport("cannot start TLS with \(peer): \(error)")
        }
        do {
            try reader.waitUntil(timeout: timeout) { $0.handshaken }
        } catch {
            self.channel.close(promise: nil)
            throw MigrationError.transport(
                "the TLS handshake with \(peer) failed: \(self.reason(error))"
            )
        }
    }

    func send(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        var inFlight: EventLoopFuture<Void>?
        while offset < bytes.count {
            let end = min(offset + Self.piece, bytes.count)
            var buffer = self.channel.allocator.buffer(capacity: end - offset)
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
            let written = self.channel.writeAndFlush(buffer)
            if let inFlight { try self.wait(for: inFlight) }
            inFlight = written
            offset = end
        }
        if let inFlight { try self.wait(for: inFlight) }
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws {
        var offset = 0
        while offset < buffer.count {
            do {
                try self.reader.waitUntil(timeout: self.timeout) { $0.buffered > 0 }
            } catch Reader.Ending.closed {
                throw MigrationError.transport("\(self.peer) closed the connection")
            } catch {
                throw MigrationError.transport("receiving from \(self.peer) failed: \(self.reason(error))")
            }
            offset += self.reader.take(
                into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]),
                resume: self.channel
            )
        }
    }

    var hasInput: Bool { self.reader.hasInput }

    func close() { self.channel.close(promise: nil) }

    /// Waits for a write, at most the timeout; a peer that stops reading for that long is given up.
    private func wait(for written: EventLoopFuture<Void>) throws {
        let done = DispatchSemaphore(value: 0)
        let outcome = NIOLockedValueBox<Result<Void, any Error>?>(nil)
        written.whenComplete { result in
            outcome.withLockedValue { $0 = result }
            done.signal()
        }
        guard done.wait(timeout: .now() + .seconds(Int(self.timeout.components.seconds))) == .success else {
            self.channel.close(promise: nil)
            throw MigrationError.transport("sending to \(self.peer) failed: it took nothing for \(self.timeout)")
        }
        if case .failure(let error) = outcome.withLockedValue({ $0 }) {
            throw MigrationError.transport("sending to \(self.peer) failed: \(self.reason(error))")
        }
    }

    private func reason(_ error: any Error) -> String {
        if case Reader.Ending.failed(let cause) = error { return HandshakeFailure.reason(cause) }
        if case Reader.Ending.timedOut = error { return "nothing came for \(self.timeout)" }
        if case Reader.Ending.closed = error { return "it closed the connection" }
        return HandshakeFailure.reason(error)
    }
}

extension TLSMigrationTransport {
    /// The end of the pipeline: keeps what comes for the move's thread, holds back reads while
    /// ``TLSMigrationTransport/highWater`` bytes wait, and notes the handshake, errors and the end.
    fileprivate final class Reader: ChannelDuplexHandler, @unchecked Sendable {
        // Sendable: everything below is read and written with `condition` held.
        typealias InboundIn = ByteBuffer
        typealias OutboundIn = ByteBuffer

        enum Ending: Error {
            case failed(any Error)
            case closed
            case timedOut
        }

        private let condition = NSCondition()
        private var pieces = CircularBuffer<ByteBuffer>()
        private(set) var buffered = 0
        private(set) var handshaken = false
        private var failure: (any Error)?
        private var ended = false
        private var readHeldBack = false

        var hasInput: Bool { self.locked { $0.buffered > 0 || $0.ended || $0.failure != nil } }

        /// Blocks until `ready` holds, throwing when the connection failed or ended first, or
        /// when nothing changes for `timeout`.
        func waitUntil(timeout: Duration, _ ready: (Reader) -> Bool) throws {
            self.condition.lock()
            defer { self.condition.unlock() }
            let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) * 1e-18
            while !ready(self) {
                if let failure = self.failure { throw Ending.failed(failure) }
                if self.ended { throw Ending.closed }
                guard self.condition.wait(until: Date(timeIntervalSinceNow: seconds)) else { throw Ending.timedOut }
            }
        }

        /// Moves what has come into `buffer`, as much as fits; asks the channel for more once
        /// the buffered bytes fall below half the high-water mark.
        func take(into buffer: UnsafeMutableRawBufferPointer, resume channel: any Channel) -> Int {
            let (taken, resumeReading) = self.locked { reader in
                var taken = 0
                while taken < buffer.count, var first = reader.pieces.first {
                    let count = min(first.readableBytes, buffer.count - taken)
                    first.withUnsafeReadableBytes { bytes in
                        UnsafeMutableRawBufferPointer(rebasing: buffer[taken..<(taken + count)])
                            .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[..<count]))
                    }
                    first.moveReaderIndex(forwardBy: count)
                    if first.readableBytes == 0 {
                        reader.pieces.removeFirst()
                    } else {
                        reader.pieces[reader.pieces.startIndex] = first
                    }
                    taken += count
                }
                reader.buffered -= taken
                let resume = reader.readHeldBack && reader.buffered < TLSMigrationTransport.highWater / 2
                if resume { reader.readHeldBack = false }
                return (taken, resume)
            }
            if resumeReading { channel.read() }
            return taken
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Self.unwrapInboundIn(data)
            self.update {
                $0.buffered += bytes.readableBytes
                $0.pieces.append(bytes)
            }
        }

        func read(context: ChannelHandlerContext) {
            let full = self.locked { reader in
                reader.readHeldBack = reader.buffered >= TLSMigrationTransport.highWater
                return reader.readHeldBack
            }
            if !full { context.read() }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .handshakeCompleted = event as? TLSUserEvent { self.update { $0.handshaken = true } }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            self.update { $0.failure = $0.failure ?? error }
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.update { $0.ended = true }
            context.fireChannelInactive()
        }

        private func locked<T>(_ body: (Reader) -> T) -> T {
            self.condition.lock()
            defer { self.condition.unlock() }
            return body(self)
        }

        /// Changes the state and wakes the move's thread.
        private func update(_ body: (Reader) -> Void) {
            self.condition.lock()
            body(self)
            self.condition.broadcast()
            self.condition.unlock()
        }
    }
}
