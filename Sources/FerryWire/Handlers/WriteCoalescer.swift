import NIOCore

/// Gathers the encoded frames written to a connection between two flushes into one buffer, and
/// holds a flush back until the tasks its event loop has queued have run. Answers that finish
/// together (many callers sharing one connection, each answer written from its own task) then
/// leave as one write, and over TLS as one record instead of one per frame: per-record work
/// and a write per answer were most of what TLS cost object calls with many callers.
///
/// Large frames are not copied: what is gathered goes first, then the frame as it is. A close
/// sends what is gathered before it, so an error answer written just before a close still goes.
final class WriteCoalescer: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Frames this long or longer pass through without being copied into the gathered buffer.
    static let largestGathered = 16 * 1024

    private var gathered: ByteBuffer?
    private var gatheredPromise: EventLoopPromise<Void>?
    private var flushScheduled = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = Self.unwrapOutboundIn(data)
        if frame.readableBytes >= Self.largestGathered {
            self.passGathered(context: context)
            context.write(data, promise: promise)
            return
        }
        if self.gathered == nil {
            self.gathered = frame
        } else {
            self.gathered!.writeImmutableBuffer(frame)
        }
        if let promise {
            if let gatheredPromise {
                gatheredPromise.futureResult.cascade(to: promise)
            } else {
                self.gatheredPromise = promise
            }
        }
    }

    func flush(context: ChannelHandlerContext) {
        guard !self.flushScheduled else { return }
        self.flushScheduled = true
        // Runs after the tasks already queued on this loop, which may write more answers.
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            self.passGathered(context: context)
            context.flush()
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if self.gathered != nil {
            self.passGathered(context: context)
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // Only a closed connection removes it: what is gathered can no longer be sent.
        self.gathered = nil
        self.gatheredPromise?.fail(ChannelError.ioOnClosedChannel)
        self.gatheredPromise = nil
    }

    private func passGathered(context: ChannelHandlerContext) {
        guard let gathered = self.gathered else { return }
        let promise = self.gatheredPromise
        self.gathered = nil
        self.gatheredPromise = nil
        context.write(Self.wrapOutboundOut(gathered), promise: promise)
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// Puts a ``WriteCoalescer`` in front of the frame codec of a socket's connection. (Not in
    /// an `EmbeddedChannel`: its synchronous writes wait for a flush that only its loop's `run()`
    /// would send.)
    public func addWriteCoalescer() throws {
        try self.addHandler(WriteCoalescer())
    }
}
