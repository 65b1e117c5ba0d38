import FerryHTTP
import Metrics
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The answer side of an exchange: passing the backend's answer on, and what a failing backend
/// leaves the client.
extension HTTPLoop {
    /// Parses the answer's head and passes on what of its body has come. Returns whether it did anything.
    func advanceResponse(_ exchange: HTTPExchange, _ upstream: Upstream) -> Bool {
        guard upstream.input.readableBytes > 0 else { return false }
        if upstream.status == nil {
            guard self.passResponseHead(exchange, upstream) else { return false }
            guard exchange.upstream === upstream, upstream.status != nil else { return true }
        }
        guard upstream.input.readableBytes > 0, !upstream.body.isComplete else {
            if upstream.body.isComplete, upstream.status != nil { self.finishResponse(exchange, upstream) }
            return true
        }
        do {
            let taken = try upstream.input.withUnsafeReadableBytes { bytes throws(BodyFraming.Failure) in
                try upstream.body.consume(bytes)
            }
            var slice = upstream.input.readSlice(length: taken)!
            if exchange.passing.readableBytes == 0 {
                // Passed on from the backend's own buffer: no copy.
                exchange.passing = slice
            } else {
                exchange.output.writeBuffer(&slice)
                upstream.input.discardReadBytes()
            }
        } catch {
            self.logger.warning("switch: backend \(self.balancer.spec(upstream.backend).address): \(error)")
            self.close(exchange)
            return true
        }
        if upstream.body.isComplete { self.finishResponse(exchange, upstream) }
        return true
    }

    /// Reads the answer's head from the backend's input and queues the client's version of it,
    /// with what this hop adds. A small answer to a request that may be repeated stays unread in
    /// the input until the whole of it has come, so that a backend that breaks it off leaves
    /// nothing sent and the request can go to another. Returns whether it did anything.
    private func passResponseHead(_ exchange: HTTPExchange, _ upstream: Upstream) -> Bool {
        let headStart = upstream.input.readerIndex
        let raw: ByteBuffer
        let start: ResponseStart
        do {
            guard let head = try upstream.parser.nextHead(&upstream.input) else { return false }
            raw = head
            start = try raw.withUnsafeReadableBytes { raw throws(HTTPRequestParser.Error) in
                try ResponseStart(raw, parser: upstream.parser.fieldRules)
            }
        } catch {
            self.logger.warning(
                "switch: backend \(self.balancer.spec(upstream.backend).address) answered \(exchange.method) \(exchange.content) with something that is not HTTP: \(error)"
            )
            self.failUpstream(exchange, status: 502, reason: "Bad Gateway", "the backend's answer was not valid HTTP")
            return true
        }
        let body = start.bodyFraming(method: exchange.method)
        if exchange.state.repeatable, start.status >= 200, case .length(let length) = body.kind,
            length <= UInt64(self.plan.options.holdBack), upstream.input.readableBytes < Int(length)
        {
            // Read again, whole, when more has come.
            upstream.input.moveReaderIndex(to: headStart)
            return false
        }
        if start.status == 101 {
            // The switch passes no Upgrade on, so a switch of protocols is the backend's mistake.
            self.failUpstream(exchange, status: 502, reason: "Bad Gateway", "the backend switched protocols unasked")
            return true
        }
        exchange.settlePassing()
        if start.status < 200 {
            // 100 Continue and the like go straight on; the real answer follows.
            raw.withUnsafeReadableBytes { start.writeHead($0, to: &exchange.output) }
            return true
        }
        upstream.body = body
        upstream.keepAlive =
            start.fields.keepAlive(minorVersion: start.minorVersion) && upstream.body.kind != .untilClose
        exchange.state.responseStarted(
            untilClose: upstream.body.kind == .untilClose,
            requestComplete: exchange.requestBody.isComplete,
            retiring: self.retiring.load(ordering: .relaxed),
            now: self.clock()
        )
        upstream.status = start.status
        let cookie = exchange.setCookie.flatMap { token in
            self.plan.options.stickyCookie.map { (name: $0, token: token) }
        }
        raw.withUnsafeReadableBytes { raw in
            start.writeHead(
                raw,
                to: &exchange.output,
                setCookie: cookie,
                close: !exchange.state.clientKeepAlive,
                keepAlive: exchange.minorVersion == 0
            )
        }
        return true
    }

    /// The answer is complete: the backend connection goes back to the pool (if it can be
    /// reused) and the client's next request may start.
    private func finishResponse(_ exchange: HTTPExchange, _ upstream: Upstream) {
        self.dropUpstream(exchange, reusable: upstream.keepAlive && exchange.requestBody.isComplete)
        let now = self.clock()
        let elapsed = now &- exchange.state.requestStartedAt
        Self.requestTimer.recordNanoseconds(Int64(clamping: elapsed))
        self.balancer.answered(upstream.backend, nanoseconds: elapsed)
        exchange.state.responseFinished(clientEnded: exchange.clientEnded, now: now)
        // No retry can come now: the head kept for one (a slice of the input's storage) goes,
        // and an input with nothing waiting gives its storage back with it.
        exchange.requestHead = ByteBuffer()
        if exchange.input.readableBytes == 0 { exchange.input = ByteBuffer() }
    }

    /// The latency histogram at `/metrics`: from a request's head read to its answer's end.
    static let requestTimer = Timer(label: "ferry_switch_request_duration_seconds")

    /// The backend closed its side.
    func upstreamEnded(_ exchange: HTTPExchange, _ upstream: Upstream) {
        if upstream.status != nil, upstream.body.kind == .untilClose {
            // The answer ran until close, as it said it would: whatever came is all of it.
            _ = self.advanceResponse(exchange, upstream)
            upstream.body = BodyFraming(.complete)
            upstream.keepAlive = false
            self.finishResponse(exchange, upstream)
            return
        }
        if upstream.input.readableBytes > 0 {
            // What came before the close may finish the answer (one held back too).
            _ = self.advanceResponse(exchange, upstream)
            if exchange.upstream !== upstream { return }
        }
        self.upstreamFailed(exchange, reason: "it closed the connection before answering in full")
    }

    /// The backend connection broke: the request goes to another backend if nothing of the
    /// answer was sent and it may be repeated; else the client gets 502 (or, mid-answer, a close).
    func upstreamFailed(_ exchange: HTTPExchange, reason: String) {
        guard let upstream = exchange.upstream else { return }
        let address = self.balancer.spec(upstream.backend).address
        self.dropUpstream(exchange, reusable: false)
        let action = exchange.state.backendFailed(upstream.backend, reused: upstream.reused)
        switch action {
        case .close:
            self.logger.warning(
                "switch: backend \(address) broke off its answer to \(exchange.method) \(exchange.content): \(reason)"
            )
        case .retry where !upstream.reused:
            self.logger.warning(
                "switch: backend \(address) failed \(exchange.method) \(exchange.content) (\(reason)); trying another backend"
            )
        case .refuse:
            self.logger.warning(
                "switch: backend \(address) failed \(exchange.method) \(exchange.content) (\(reason)); it may not be repeated"
            )
        default:
            // A pooled connection its backend had closed says nothing of the backend.
            break
        }
        self.apply(action, to: exchange)
    }

    /// Answers `status` for a backend whose answer cannot be passed on, unless part of the real
    /// answer is already out.
    /// Both answers drop the backend connection.
    func failUpstream(_ exchange: HTTPExchange, status: Int, reason: String, _ message: String) {
        self.apply(exchange.state.backendUnusable(status: status, reason: reason, message: message), to: exchange)
    }

    func backendUnreachable(_ backend: Int, reason: String) {
        self.balancer.connectFailed(backend)
        self.logger.warning(
            "switch: connect to backend \(self.balancer.spec(backend).address) failed (\(reason)); out of rotation until a health check passes"
        )
    }

    /// Detaches the exchange's backend connection: into the idle pool, or closed.
    func dropUpstream(_ exchange: HTTPExchange, reusable: Bool) {
        guard let upstream = exchange.upstream else { return }
        exchange.upstream = nil
        self.balancer.release(upstream.backend)
        // Its storage may still be shared with the body being passed on, and is the spare's
        // alone once that is written: it is cleared when taken (clearing it now would copy).
        if upstream.input.readableBytes == 0, upstream.input.capacity >= Self.readSize,
            self.spareInputs.count < Self.spareInputLimit
        {
            self.spareInputs.append(upstream.input)
            upstream.input = ByteBuffer()
        }
        // A backend may answer before the request's body is all sent (an early 413, say): the
        // rest would be read as the start of the next request, so such a connection is closed.
        if reusable, upstream.input.readableBytes == 0, upstream.output.readableBytes == 0,
            self.idle[upstream.backend].count < self.plan.options.idlePerBackend
        {
            // Pooled without buffers: the input's storage may still be shared with a body on its
            // way to the client, and an idle connection holds no memory for its next answer.
            upstream.input = ByteBuffer()
            upstream.output = ByteBuffer()
            self.idle[upstream.backend].append(upstream)
            self.owners[upstream.fd] = .idle(backend: upstream.backend)
        } else {
            self.owners[upstream.fd] = nil
            Glibc.close(upstream.fd)
        }
    }
}
