import CFerryLinux
import FerryHTTP
import FerryPosix
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The event-driven model: one NIO event loop per core, non-blocking throughout, no workers.
///
/// An acceptor thread takes connections off the listening socket (so their descriptors can be
/// watched for urgent data) and gives each to an event loop, where ``EventDrivenHTTPHandler``
/// serves it as a finite-state machine.
final class EventDrivenFrontEnd: Sendable {
    private let listener: TCPListener
    private let group: MultiThreadedEventLoopGroup
    private let responder: BlockingResponder
    private let watcher: UrgentDataWatcher
    private let loop: WakeableLoop
    private let timeouts: ClientTimeouts

    init(
        listener: TCPListener,
        loops: Int,
        responder: BlockingResponder,
        watcher: UrgentDataWatcher,
        timeouts: ClientTimeouts
    ) throws {
        self.listener = listener
        self.timeouts = timeouts
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: loops)
        self.responder = responder
        self.watcher = watcher
        self.loop = try WakeableLoop(name: "ferry-accept")
        try self.loop.watch(listener.fd)
    }

    func start() throws(PosixError) {
        try self.loop.start(
            WakeableLoop.Policy(onReady: { [self] _, _ in
                while let descriptor = self.listener.accept() { self.adopt(descriptor) }
            })
        )
    }

    func stop() async {
        self.loop.stop()
        try? await self.group.shutdownGracefully()
    }

    /// Serves a connected socket on one of the event loops: one this front end accepted, or one
    /// accepted elsewhere and handed over (TCP handoff). Callable from any thread.
    func adopt(_ descriptor: Int32) {
        guard !self.loop.isStopping else {
            close(descriptor)
            return
        }
        guard let connectionID = self.responder.registry.open(descriptor: descriptor, logger: self.responder.logger)
        else { return }
        self.watcher.watch(descriptor)
        let responder = self.responder
        let timeouts = self.timeouts
        ClientBootstrap(group: self.group)
            // NIO keeps each channel's last read buffer for the next read: start it small (a
            // request head is a few hundred bytes) so an idle connection holds little.
            .channelOption(
                .recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 64 << 10)
            )
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        EventDrivenHTTPHandler(
                            connectionID: connectionID,
                            descriptor: descriptor,
                            responder: responder,
                            timeouts: timeouts
                        )
                    )
                }
            }
            .withConnectedSocket(descriptor)
            .whenFailure { error in
                responder.logger.warning("could not take connection \(connectionID): \(error)")
                responder.registry.close(connection: connectionID)
            }
    }
}

/// Serves one connection without ever blocking its event loop: a request runs through the states
/// idle → sending → idle, and a file read that would wait for the disk (RWF_NOWAIT says so) is
/// parked, readahead started, and retried a moment later while the loop serves others.
///
/// Only its event loop touches it, so its state skips the runtime's exclusivity checks, which
/// cost several percent of a small request's time.
final class EventDrivenHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct Transfer {
        let file: OpenFile
        var position: Int
        let end: Int
        let framing: ResponseFraming
        let requestID: UInt64
        let flag: CancellationFlag
    }

    private let connectionID: UInt64
    private let descriptor: Int32
    private let responder: BlockingResponder
    @exclusivity(unchecked) private var buffer = ByteBuffer()
    @exclusivity(unchecked) private var parser = HTTPRequestParser()
    @exclusivity(unchecked) private var transfer: Transfer?
    @exclusivity(unchecked) private var retryScheduled = false
    @exclusivity(unchecked) private var pumping = false
    /// Chunks sent per turn of the event loop before other work gets its go.
    private static let chunksPerTurn = 16
    @exclusivity(unchecked) private var closed = false
    /// The client's header and idle timeouts, and whether a timer is set to look at them.
    @exclusivity(unchecked) private var deadline: ClientDeadline
    @exclusivity(unchecked) private var timer = DeadlineTimer()

    init(connectionID: UInt64, descriptor: Int32, responder: BlockingResponder, timeouts: ClientTimeouts) {
        self.connectionID = connectionID
        self.descriptor = descriptor
        self.responder = responder
        self.deadline = ClientDeadline(timeouts: timeouts, now: MonotonicClock.nanoseconds())
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.setTimer(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = Self.unwrapInboundIn(data)
        // Usually nothing waits: take the read's buffer as it is rather than copy it.
        if self.buffer.readableBytes == 0 { self.buffer = bytes } else { self.buffer.writeBuffer(&bytes) }
        self.deadline.requestBytesArrived(now: MonotonicClock.nanoseconds())
        self.setTimer(context: context)  // a head's wait may end before the idle wait it follows
        self.serveNext(context: context)
    }

    private func setTimer(context: ChannelHandlerContext) {
        guard !self.closed else { return }
        self.timer.set(for: self.deadline, on: context.eventLoop) {
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            return {
                let (handler, context) = bound.value
                handler.timer.fired()
                handler.closeIfExpired(context: context)
            }
        }
    }

    /// Closes the connection if its client ran out of time: 408 first when it began a head.
    private func closeIfExpired(context: ChannelHandlerContext) {
        guard !self.closed else { return }
        guard let wait = self.deadline.expired(now: MonotonicClock.nanoseconds()) else {
            self.setTimer(context: context)
            return
        }
        let reason = self.deadline.reason(wait)
        self.responder.logger.debug("connection \(self.connectionID): \(reason); closing it")
        self.responder.metrics.timedOut()
        if self.deadline.answers408(wait), self.transfer == nil {
            self.respond(context: context, .text(.requestTimeout, reason), request: nil)
        } else {
            self.closed = true
            context.close(promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.deadline.sendResumed()
            self.pump(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.closed = true
        self.timer.cancel()
        self.transfer = nil
        self.responder.registry.close(connection: self.connectionID)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.responder.logger.debug("connection \(self.connectionID): \(error)")
        context.close(promise: nil)
    }

    /// Starts the next buffered request if none is running.
    private func serveNext(context: ChannelHandlerContext) {
        guard self.transfer == nil, !self.closed else { return }
        let request: HTTPRequest
        do {
            guard let parsed = try self.parser.parse(&self.buffer) else { return }
            request = parsed
        } catch {
            self.respond(context: context, .text(.badRequest, error.description), request: nil)
            return
        }
        // An idle connection keeps no buffer: 10,000 of them would hold one read's storage each.
        if self.buffer.readableBytes == 0 { self.buffer = ByteBuffer() } else { self.buffer.discardReadBytes() }
        self.deadline.headRead(bodyFollows: false, now: MonotonicClock.nanoseconds())
        self.respond(context: context, self.responder.files.respond(to: request), request: request)
    }

    private func respond(context: ChannelHandlerContext, _ response: FileResponse, request: HTTPRequest?) {
        let (requestID, flag) = self.responder.registry.begin(connection: self.connectionID)
        var head = response.head
        let framing = ResponseFraming(
            head: &head,
            body: response.body,
            request: request,
            connectionID: self.connectionID,
            requestID: requestID,
            keepAlive: request?.keepAlive ?? false
        )
        var out = context.channel.allocator.buffer(capacity: 512)
        head.write(to: &out)
        guard framing.sendsBody, case .file(let file, let offset, let length) = response.body else {
            if framing.sendsBody, case .bytes(var bytes) = response.body {
                if bytes.readableBytes <= ResponseFraming.copiedBody {
                    out.writeBuffer(&bytes)
                } else {
                    context.write(Self.wrapOutboundOut(out), promise: nil)  // both leave in one writev
                    out = bytes
                }
            }
            context.writeAndFlush(Self.wrapOutboundOut(out), promise: nil)
            self.finish(
                context: context,
                requestID: requestID,
                flag: flag,
                status: head.status.code,
                keepAlive: framing.keepAlive
            )
            return
        }
        // Head and body straight to the socket when they can go so; what it did not take goes below.
        var sent = 0
        if !framing.chunked,
            case .sent(let count) = self.sendDirectly(context: context, head: out, file, offset, length)
        {
            sent = count
        }
        let headLength = out.readableBytes
        out.moveReaderIndex(forwardBy: min(sent, headLength))
        if out.readableBytes > 0 { context.write(Self.wrapOutboundOut(out), promise: nil) }
        self.transfer = Transfer(
            file: file,
            position: offset + max(sent - headLength, 0),
            end: offset + length,
            framing: framing,
            requestID: requestID,
            flag: flag
        )
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        flag.onCancel {
            loop.execute { bound.value.0.cancelTransfer(context: bound.value.1) }
        }
        self.pump(context: context)
    }

    /// Sends file chunks while the client keeps up; returns when it does not, or the disk would block.
    ///
    /// Never re-entered: a flush can make the channel writable again at once, and answering that
    /// by recursing would keep the loop inside one callback for the whole file, starving its other
    /// connections and the cancel queued for this one. Instead each turn sends a bounded number of
    /// chunks and, if the client is still keeping up, queues the next turn behind the loop's other work.
    private func pump(context: ChannelHandlerContext) {
        guard !self.pumping else { return }
        self.pumping = true
        defer { self.pumping = false }
        var budget = Self.chunksPerTurn
        while var transfer = self.transfer, !self.retryScheduled, context.channel.isWritable, budget > 0 {
            budget -= 1
            guard transfer.position < transfer.end else {
                if transfer.framing.chunked {
                    context.write(Self.wrapOutboundOut(ResponseFraming.lastChunk(complete: true)), promise: nil)
                }
                context.flush()
                self.transfer = nil
                self.pumping = false  // finishing may start the next pipelined request, which pumps
                self.finish(
                    context: context,
                    requestID: transfer.requestID,
                    flag: transfer.flag,
                    status: 200,
                    keepAlive: transfer.framing.keepAlive
                )
                return
            }
            if !transfer.framing.chunked {
                switch self.sendDirectly(
                    context: context,
                    head: nil,
                    transfer.file,
                    transfer.position,
                    transfer.end - transfer.position
                ) {
                case .sent(let count) where count > 0:
                    transfer.position += count
                    self.transfer = transfer
                    continue
                case .fileEnded:
                    self.fileEndedEarly(context: context)
                    return
                default: break  // copied below: through NIO, which says when the client has room again
                }
            }
            let length = min(ResponseFraming.chunkSize, transfer.end - transfer.position)
            var data = context.channel.allocator.buffer(capacity: length)
            var read = 0
            data.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { bytes in
                read = ferry_pread_nowait(
                    transfer.file.descriptor,
                    bytes.baseAddress!,
                    length,
                    off_t(transfer.position)
                )
                return max(read, 0)
            }
            if read < 0 {
                if errno == EAGAIN {
                    self.parkUntilDiskIsReady(context: context)
                } else {
                    self.responder.logger.warning(
                        "connection \(self.connectionID): reading the file failed: \(String(cString: strerror(errno)))"
                    )
                    context.close(promise: nil)
                }
                return
            }
            if read == 0 {
                self.fileEndedEarly(context: context)
                return
            }
            if transfer.framing.chunked {
                context.write(Self.wrapOutboundOut(ResponseFraming.chunkHeader(read)), promise: nil)
                context.write(Self.wrapOutboundOut(data), promise: nil)
                context.write(Self.wrapOutboundOut(ResponseFraming.chunkEnd), promise: nil)
            } else {
                context.write(Self.wrapOutboundOut(data), promise: nil)
            }
            transfer.position += read
            self.transfer = transfer
        }
        context.flush()
        guard self.transfer != nil, !self.retryScheduled else { return }
        if context.channel.isWritable {
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.execute { bound.value.0.pump(context: bound.value.1) }
        } else {
            // The client must take some of what is queued before the answer goes on.
            self.deadline.sendStalled(now: MonotonicClock.nanoseconds())
            self.setTimer(context: context)
        }
    }

    /// Whether this kernel tells which pages of a file are cached (cachestat, Linux 6.5): only then
    /// can a body go by sendfile, which has no way to fail rather than wait for the disk.
    private static let sendsFromPageCache: Bool = {
        ferry_range_cached(-1, 0, 1) == 0 || errno != ENOSYS
    }()

    /// The most one sendfile call is given: past it the rest waits for the loop's next turn.
    private static let sendfileWindow = 1 << 20

    private enum DirectSend {
        /// Not tried: NIO still holds bytes to send first, or the pages are not all cached.
        case notTried
        /// Bytes the socket took, head first (0 when it was full).
        case sent(Int)
        /// The file is shorter than the answer said (truncated while being served).
        case fileEnded
    }

    /// Sends `head` (when given; held back with MSG_MORE so it leaves with the body) and the file's
    /// bytes by sendfile straight to the socket: no copy through Ferry's memory, nginx's `sendfile
    /// on; tcp_nopush on`. Only when NIO has nothing queued to go first, and only when the page
    /// cache holds every page, so the loop never waits for the disk.
    ///
    /// NIO's own sendfile (a `FileRegion`) is not used: on a file that shrinks under it, it would
    /// retry a sendfile that sends nothing forever, at full speed.
    private func sendDirectly(
        context: ChannelHandlerContext,
        head: ByteBuffer?,
        _ file: OpenFile,
        _ offset: Int,
        _ length: Int
    ) -> DirectSend {
        let window = min(length, Self.sendfileWindow)
        guard Self.sendsFromPageCache,
            (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) == 0,
            ferry_range_cached(file.descriptor, off_t(offset), window) == 1
        else { return .notTried }
        var ended: Int32 = 0
        let sent = { (bytes: UnsafeRawBufferPointer) in
            ferry_send_head_and_file(
                self.descriptor,
                bytes.baseAddress,
                bytes.count,
                file.descriptor,
                off_t(offset),
                window,
                &ended
            )
        }
        let count = head.map { $0.withUnsafeReadableBytes(sent) } ?? sent(UnsafeRawBufferPointer(start: nil, count: 0))
        return ended != 0 && count == 0 ? .fileEnded : .sent(count)
    }

    /// The file shrank while its answer was going out: the length the head gave cannot be met.
    private func fileEndedEarly(context: ChannelHandlerContext) {
        self.responder.logger.warning(
            "connection \(self.connectionID): the file ended before the length its answer gave; closing the connection"
        )
        context.close(promise: nil)
    }

    /// The page cache does not have the next chunk: readahead is under way, so come back shortly.
    private func parkUntilDiskIsReady(context: ChannelHandlerContext) {
        self.retryScheduled = true
        context.flush()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: .microseconds(500)) {
            let (handler, context) = bound.value
            handler.retryScheduled = false
            handler.pump(context: context)
        }
    }

    private func cancelTransfer(context: ChannelHandlerContext) {
        guard let transfer = self.transfer, !self.closed else { return }
        self.transfer = nil
        self.responder.metrics.cancelled()
        guard transfer.framing.chunked else {
            self.responder.logger.debug(
                "request \(transfer.requestID) of connection \(self.connectionID) cancelled mid-body; closing the connection, since its framing cannot end early"
            )
            self.responder.registry.end(connection: self.connectionID, requestID: transfer.requestID)
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(Self.wrapOutboundOut(ResponseFraming.lastChunk(complete: false)), promise: nil)
        self.finish(
            context: context,
            requestID: transfer.requestID,
            flag: transfer.flag,
            status: 200,
            keepAlive: transfer.framing.keepAlive
        )
    }

    private func finish(
        context: ChannelHandlerContext,
        requestID: UInt64,
        flag: CancellationFlag,
        status: Int,
        keepAlive: Bool
    ) {
        self.responder.registry.end(connection: self.connectionID, requestID: requestID)
        self.responder.metrics.served(status: status, flag: flag)
        guard keepAlive else {
            self.closed = true
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(Self.wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).whenComplete {
                _ in
                bound.value.close(promise: nil)
            }
            return
        }
        let now = MonotonicClock.nanoseconds()
        self.deadline.answered(now: now)
        if self.buffer.readableBytes > 0 { self.deadline.requestBytesArrived(now: now) }
        self.setTimer(context: context)
        self.serveNext(context: context)
    }
}
