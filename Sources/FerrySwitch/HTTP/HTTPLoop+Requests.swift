import CFerryLinux
import FerryHTTP
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The request side of an exchange: reading heads, framing bodies, reaching a backend.
extension HTTPLoop {
    /// Starts the next request, or passes on more of the current one's body. Returns whether it
    /// did anything.
    func advanceRequest(_ exchange: HTTPExchange) -> Bool {
        switch exchange.state.phase {
        case .closing:
            return false
        case .awaitingRequest:
            let request: RequestStart
            do {
                var parsed: RequestStart?
                if let head = try exchange.parser.nextHead(&exchange.input) {
                    parsed = try head.withUnsafeReadableBytes { raw throws(HTTPRequestParser.Error) in
                        try RequestStart(raw, parser: exchange.parser, plan: self.plan, client: exchange.clientText)
                    }
                }
                guard let parsed else {
                    if exchange.clientEnded {
                        if exchange.input.readableBytes == 0 {
                            self.close(exchange)
                        } else {
                            self.refuse(
                                exchange,
                                status: 400,
                                reason: "Bad Request",
                                "the request ended inside its head"
                            )
                        }
                        return true
                    }
                    return false
                }
                request = parsed
            } catch {
                self.refuse(exchange, status: 400, reason: "Bad Request", error.description)
                return true
            }
            self.begin(request, on: exchange)
            return true
        case .forwarding:
            guard let upstream = exchange.upstream, upstream.connected, !exchange.requestBody.isComplete,
                upstream.output.readableBytes < Self.outputLimit
            else {
                if exchange.clientEnded, !exchange.requestBody.isComplete, exchange.input.readableBytes == 0 {
                    self.close(exchange)  // the client gave up in the middle of its body
                    return true
                }
                return false
            }
            guard exchange.input.readableBytes > 0 else { return false }
            do {
                let taken = try exchange.input.withUnsafeReadableBytes { bytes throws(BodyFraming.Failure) in
                    try exchange.requestBody.consume(bytes)
                }
                var slice = exchange.input.readSlice(length: taken)!
                upstream.output.writeBuffer(&slice)
                exchange.input.discardReadBytes()
                if exchange.requestBody.isComplete { exchange.state.requestBodyEnded(now: self.clock()) }
            } catch {
                self.refuse(exchange, status: 400, reason: "Bad Request", error.description)
            }
            return true
        }
    }

    /// Frames a read request's body, picks its backend and queues its head for it.
    private func begin(_ request: RequestStart, on exchange: HTTPExchange) {
        switch request.bodyFraming() {
        case .failure(let refusal):
            return self.refuse(exchange, status: 400, reason: "Bad Request", refusal.message)
        case .success(let body):
            exchange.requestBody = body
        }
        exchange.minorVersion = request.minorVersion
        exchange.method = request.method
        exchange.content = request.path
        exchange.outside = request.outside
        exchange.setCookie = nil
        exchange.requestHead = request.head
        exchange.state.requestStarted(
            repeatable: exchange.requestBody.isComplete && RequestStart.isRepeatable(request.method),
            keepAlive: request.fields.keepAlive(minorVersion: request.minorVersion),
            bodyFollows: !exchange.requestBody.isComplete,
            now: self.clock()
        )
        self.connectUpstream(exchange, sticky: request.sticky)
    }

    /// Gives the exchange a backend connection (a pooled one when the request may be repeated,
    /// else a fresh one) with the request head queued on it; answers 502/503 when none is left.
    func connectUpstream(_ exchange: HTTPExchange, sticky: Int? = nil) {
        let excluded = exchange.state.excluded(outside: exchange.outside)
        var chosen: Int?
        if let sticky, !excluded.contains(sticky) {
            chosen = self.balancer.pick(
                client: exchange.clientAddress,
                excluding: Set(0..<self.plan.backendCount).subtracting([sticky])
            )
        }
        if chosen == nil {
            chosen = self.balancer.pick(client: exchange.clientAddress, content: exchange.content, excluding: excluded)
        }
        guard let backend = chosen else { return self.apply(exchange.state.noBackendLeft(), to: exchange) }
        exchange.state.picked(backend)
        if self.plan.options.stickyCookie != nil, sticky != backend {
            exchange.setCookie = self.plan.tokens[backend]
        }
        let upstream: Upstream
        // Only a request that may be repeated rides a pooled connection, which its backend may
        // have closed a moment ago; others get a fresh one, as HAProxy's "http-reuse safe" does.
        if exchange.state.repeatable, let pooled = self.idle[backend].popLast() {
            pooled.reuse()
            upstream = pooled
        } else {
            let fd = self.addresses[backend].withSockAddr { ferry_connect_nonblocking($0, socklen_t($1)) }
            guard fd >= 0 else {
                self.backendUnreachable(backend, reason: String(cString: strerror(errno)))
                return self.connectUpstream(exchange)
            }
            do {
                try self.thread.watch(fd, EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue)
            } catch {
                Glibc.close(fd)
                self.balancer.release(backend)
                return self.refuse(exchange, status: 502, reason: "Bad Gateway", "\(error)")
            }
            upstream = Upstream(
                fd: fd,
                backend: backend,
                connected: false,
                maxHeadLength: self.plan.options.maxHeadLength
            )
        }
        self.requestsSinceSweep += 1
        if var spare = self.spareInputs.popLast() {
            spare.clear()
            upstream.input = spare
        }
        // The head is sent from the storage it was parsed into: a body that follows copies it.
        upstream.output = exchange.requestHead
        self.owners[upstream.fd] = .upstream(exchange)
        exchange.upstream = upstream
    }

    /// Whether a connect in progress has finished; a failed one moves the request on.
    func finishConnect(_ exchange: HTTPExchange, _ upstream: Upstream) -> Bool {
        let error = ferry_socket_error(upstream.fd)
        if error == EINPROGRESS || error == EALREADY { return false }
        if error != 0 {
            self.dropUpstream(exchange, reusable: false)
            self.backendUnreachable(upstream.backend, reason: String(cString: strerror(error)))
            self.connectUpstream(exchange)
            return true
        }
        upstream.connected = true
        return true
    }
}
