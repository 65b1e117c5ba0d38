import CFerryLinux
import FerryHTTP
import FerryPosix
import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One l7 switch thread: its clients, their backend connections and its idle pool. It owns the
/// sockets and drives each exchange's bytes; what each event means for the exchange (deadlines,
/// retries, refusals, closing) is its ``ExchangeState``'s to decide.
final class HTTPLoop: SwitchLoop, @unchecked Sendable {
    // Sendable: everything mutable is touched only by this loop's thread, after `start`.
    enum Owner {
        case client(HTTPExchange)
        case upstream(HTTPExchange)
        case idle(backend: Int)
    }

    let thread: SwitchThread
    let balancer: Balancer
    let addresses: [SocketAddress]
    let plan: RoutingPlan
    /// The cap on connections per client address, shared by the switch's threads.
    let sources: SourceLimit
    let logger: Logger
    /// Monotonic nanoseconds; passed in so that tests of the rules need no waiting.
    let clock: @Sendable () -> UInt64
    let timeouts: ExchangeState.Timeouts
    /// Who each descriptor belongs to.
    var owners = DescriptorTable<Owner>()
    /// Pooled backend connections, each with what it was last known to allow (`ready`): one put
    /// back after a short read has nothing to read (anything that arrives while it waits closes
    /// it), so the next request on it is not followed by a read bound to find nothing.
    var idle: [[Upstream]]
    var clients: [CInt: HTTPExchange] = [:]
    /// Retired by a reload: no keep-alive beyond the answer in progress.
    let retiring = Atomic(false)
    /// When ``expire()`` next looks at the deadlines.
    var nextSweep: UInt64 = 0
    static let sweepInterval: UInt64 = 100_000_000
    /// Bytes a connection may have waiting to be written before its source stops being read.
    static let outputLimit = 256 << 10
    static let readSize = 64 << 10
    /// Every client read lands here first: a connection keeps only the bytes that came.
    var scratch = ByteBuffer()
    /// Backend read buffers given back by finished answers, for the next backend connection to
    /// read into (HAProxy's buffer pool). Allocated afresh for each answer, the buffer's pages
    /// were faulted in by the first read and handed back to the kernel by malloc's trimming,
    /// over and over: thousands of page faults a second at 20,000 requests a second.
    var spareInputs: [ByteBuffer] = []
    static let spareInputLimit = 16
    /// Requests sent to a backend since the last sweep. None means the loop is idle: it gives its
    /// spares back and has malloc return the free pages in the middle of its heap (HAProxy trims
    /// its pools and calls `malloc_trim` the same way). Buffers cycled through the spares stay
    /// resident otherwise: 10,000 idle connections cost about 100 bytes more each (`memory.sh`).
    var requestsSinceSweep = 0

    init(
        thread: SwitchThread,
        balancer: Balancer,
        addresses: [SocketAddress],
        plan: RoutingPlan,
        sources: SourceLimit,
        logger: Logger,
        clock: @escaping @Sendable () -> UInt64 = MonotonicClock.nanoseconds
    ) {
        self.thread = thread
        self.balancer = balancer
        self.addresses = addresses
        self.plan = plan
        self.sources = sources
        self.logger = logger
        self.clock = clock
        self.idle = Array(repeating: [], count: addresses.count)
        self.timeouts = ExchangeState.Timeouts(
            client: plan.options.client,
            backend: plan.options.backendTimeout.wholeNanoseconds
        )
    }

    func start() throws {
        try self.thread.start(
            onListener: { self.acceptWaiting() },
            onEvent: { fd, events in self.handle(fd, events) },
            tick: 100,
            onTick: { self.expire() },
            onStop: {
                for exchange in Array(self.clients.values) { self.close(exchange) }
                for pool in self.idle { for upstream in pool { Glibc.close(upstream.fd) } }
            }
        )
    }

    func stop() { self.thread.stop() }

    func retire() {
        self.retiring.store(true, ordering: .relaxed)
        self.thread.retire { self.clients.isEmpty }
    }

    // MARK: Events

    /// Takes one waiting connection per wake, as nginx does (`multi_accept off`): the listener
    /// stays readable while more wait, and the kernel wakes a loop that sleeps for each new one,
    /// so a burst of connections spreads over the loops instead of landing on whichever woke
    /// first (taking all, one loop of two ended up with 64% of the work under `wrk -c64`).
    /// (A connection refused for its source's limit does not count.)
    private func acceptWaiting() {
        var accepted = 0
        while accepted < 1,
            let client = BoundSocket.accept(
                on: self.thread.listener,
                failed: { self.logger.warning("switch: \($0)") }
            )
        {
            let source = PeerAddress.peer(of: client)
            guard self.sources.admit(client: client, from: source, logger: self.logger) else { continue }
            let exchange = HTTPExchange(
                client: client,
                clientAddress: source?.bytes ?? [],
                maxHeadLength: self.plan.options.maxHeadLength,
                state: ExchangeState(timeouts: self.timeouts, now: self.clock())
            )
            do {
                try self.thread.watch(
                    client,
                    EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
                )
            } catch {
                self.sources.release(exchange.clientAddress)
                Glibc.close(client)
                continue
            }
            self.owners[client] = .client(exchange)
            self.clients[client] = exchange
            self.drive(exchange)
            accepted += 1
        }
    }

    private func handle(_ fd: CInt, _ events: UInt32) {
        switch self.owners[fd] {
        case .client(let exchange):
            exchange.clientReady.note(events)
            self.drive(exchange)
        case .upstream(let exchange):
            exchange.upstream?.ready.note(events)
            self.drive(exchange)
        case .idle(let backend):
            // An idle connection has nothing to say: anything readable is its backend closing it.
            guard events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 else {
                return
            }
            self.idle[backend].removeAll { $0.fd == fd }
            self.owners[fd] = nil
            Glibc.close(fd)
        case nil:
            break
        }
    }

    /// Gives up on waits that ran past their deadline, and on idle connections once retiring;
    /// looked at once per tick, not after every batch of events: deadlines are whole seconds.
    private func expire() {
        let now = self.clock()
        guard now >= self.nextSweep else { return }
        self.nextSweep = now + Self.sweepInterval
        if self.requestsSinceSweep == 0, !self.spareInputs.isEmpty {
            self.spareInputs.removeAll()
            malloc_trim(0)
        }
        self.requestsSinceSweep = 0
        let retiring = self.retiring.load(ordering: .relaxed)
        for exchange in Array(self.clients.values) {
            let action = exchange.state.expired(
                now: now,
                retiring: retiring,
                hasRequestBytes: exchange.input.readableBytes > 0
            )
            guard let action else { continue }
            if exchange.state.phase == .forwarding {
                let what: String
                switch action {
                case .refuse(_, _, let message): what = message
                default: what = "the answer stalled after it began"
                }
                self.logger.warning("switch: \(exchange.method) \(exchange.content): \(what)")
            }
            self.apply(action, to: exchange)
            if exchange.isOpen { self.drive(exchange) }
        }
    }

    /// Does what the exchange's state decided.
    func apply(_ action: ExchangeState.Action, to exchange: HTTPExchange) {
        switch action {
        case .close: self.close(exchange)
        case .refuse(let status, let reason, let message):
            self.refuse(exchange, status: status, reason: reason, message)
        case .retry: self.connectUpstream(exchange)
        case .shutdownWriting: shutdown(exchange.client, CInt(SHUT_WR))
        }
    }

    // MARK: Driving an exchange

    /// Makes every step the exchange's sockets allow, until none can be made: with
    /// edge-triggered events, a step not taken now might not be signalled again.
    func drive(_ exchange: HTTPExchange) {
        var progress = true
        while progress, exchange.isOpen {
            progress = false
            // Answers first: they free buffers and end requests.
            switch self.flushClient(exchange) {
            case .moved: progress = true
            case .failed:
                self.close(exchange)
                return
            case .idle: break
            }
            if exchange.state.phase == .closing {
                if !exchange.hasOutput { self.linger(exchange) }
                return
            }
            if let upstream = exchange.upstream {
                if !upstream.connected {
                    guard self.finishConnect(exchange, upstream) else { continue }
                    progress = true
                }
                switch self.flush(&upstream.output, to: upstream.fd, &upstream.ready, keepingStorage: false) {
                case .moved: progress = true
                case .failed:
                    self.upstreamFailed(exchange, reason: "write failed: \(String(cString: strerror(errno)))")
                    progress = true
                    continue
                case .idle: break
                }
                // While a body read from it is still being passed on, the backend's buffer is
                // shared with the client's output, and more reads would have to copy it.
                if upstream.status == nil || !upstream.body.isComplete,
                    exchange.output.readableBytes < Self.outputLimit, exchange.passing.readableBytes == 0
                {
                    switch upstream.ready.read(upstream.fd, into: &upstream.input, size: Self.readSize) {
                    case .data:
                        progress = true
                        if upstream.status != nil { exchange.state.responseProgressed(now: self.clock()) }
                    case .end:
                        self.upstreamEnded(exchange, upstream)
                        progress = true
                        continue
                    case .failed:
                        self.upstreamFailed(exchange, reason: String(cString: strerror(errno)))
                        progress = true
                        continue
                    case .wouldBlock: break
                    }
                }
                if self.advanceResponse(exchange, upstream) { progress = true }
            }
            let wantsRequestBytes =
                exchange.state.phase == .awaitingRequest
                || (exchange.state.phase == .forwarding && !exchange.requestBody.isComplete)
            if wantsRequestBytes, !exchange.clientEnded, exchange.input.readableBytes < Self.outputLimit {
                switch self.readClient(exchange) {
                case .data:
                    exchange.state.clientBytesArrived(now: self.clock())
                    progress = true
                case .end:
                    exchange.clientEnded = true
                    progress = true
                case .failed:
                    self.close(exchange)
                    return
                case .wouldBlock: break
                }
            }
            if self.advanceRequest(exchange) { progress = true }
        }
    }

    /// Answers with an error of the switch's own and closes the connection once it is written.
    func refuse(_ exchange: HTTPExchange, status: Int, reason: String, _ message: String) {
        self.dropUpstream(exchange, reusable: false)
        let body = "ferry switch: \(message)\n"
        exchange.settlePassing()
        exchange.output.writeString(
            "HTTP/1.1 \(status) \(reason)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        )
        exchange.state.refused(now: self.clock())
        self.logger.debug("switch: answered \(status) to \(exchange.clientText): \(message)")
    }

    /// After the last answer: the switch stops writing, and reads and drops what the client still
    /// sends until it closes (or the deadline passes). Closing with unread bytes would reset the
    /// connection, and a reset can destroy the answer before the client has read it.
    private func linger(_ exchange: HTTPExchange) {
        if let action = exchange.state.answerWritten() { self.apply(action, to: exchange) }
        while true {
            self.scratch.clear()
            switch exchange.clientReady.read(exchange.client, into: &self.scratch, size: Self.readSize) {
            case .data: continue
            case .wouldBlock: return
            case .end, .failed:
                self.close(exchange)
                return
            }
        }
    }

    func close(_ exchange: HTTPExchange) {
        guard exchange.isOpen else { return }
        exchange.isOpen = false
        self.dropUpstream(exchange, reusable: false)
        self.clients[exchange.client] = nil
        self.owners[exchange.client] = nil
        self.sources.release(exchange.clientAddress)
        Glibc.close(exchange.client)
    }
}
