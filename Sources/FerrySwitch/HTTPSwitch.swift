import CFerryLinux
import FerryEndpoints
import FerryHTTP
import FerryPosix
import FerryWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// The application-layer switch (`ferry switch --mode l7`): it reads each HTTP/1.1 request,
/// chooses a backend by the request's content, and forwards the request and its answer.
///
/// - Routing: rules on the Host, the path prefix and header values pick a group of backends
///   (``HTTPRoute``); the balancer picks within it, by LARD (``BalancePolicy/locality``) when
///   asked, so the same content reaches the same backend and its cache stays hot.
/// - A sticky cookie, when configured, keeps a client on the backend that served it first.
/// - `X-Forwarded-For` carries the client's address; connections to backends are kept alive and
///   reused, per switch thread.
/// - A request that is safe to repeat (GET, HEAD, OPTIONS, PUT, DELETE, TRACE, without a body)
///   whose backend fails before answering is sent again to another backend.
/// - Requests are parsed strictly (``HTTPRequestParser``): anything a smuggler could use —
///   Content-Length with Transfer-Encoding, two Content-Lengths, a malformed chunked body — is
///   answered 400 and that connection alone is closed. A backend that answers garbage gives 502.
public final class HTTPSwitch: Sendable {
    public struct Options: Sendable {
        public var routes: [HTTPRoute]
        /// The cookie that keeps a client on one backend; no stickiness when nil.
        public var stickyCookie: String?
        /// How long a client may take to send a request head, and stay idle between requests.
        public var clientTimeout: Duration
        /// How long a backend may take to start answering, and stay silent while it answers.
        public var backendTimeout: Duration
        /// Idle keep-alive connections kept per backend and switch thread.
        public var idlePerBackend: Int
        public var maxHeadLength: Int

        public init(
            routes: [HTTPRoute] = [],
            stickyCookie: String? = nil,
            clientTimeout: Duration = .seconds(10),
            backendTimeout: Duration = .seconds(30),
            idlePerBackend: Int = 64,
            maxHeadLength: Int = 16 * 1024
        ) {
            self.routes = routes
            self.stickyCookie = stickyCookie
            self.clientTimeout = clientTimeout
            self.backendTimeout = backendTimeout
            self.idlePerBackend = idlePerBackend
            self.maxHeadLength = maxHeadLength
        }
    }

    public let balancer: Balancer
    public let address: ServiceEndpoint
    private let listener: SwitchListener
    private let loops: [HTTPLoop]
    private let backends: SwitchBackends

    public init(
        listen listener: SwitchListener,
        backends: [BackendSpec],
        policy: BalancePolicy = .roundRobin,
        maxConnectionsPerBackend: Int? = nil,
        healthCheck: HealthCheck = .tcp,
        healthCheckInterval: Duration? = .seconds(2),
        slowStart: Duration? = nil,
        options: Options = Options(),
        threads: Int = 2,
        logger: Logger = Logger(label: "ferry.switch")
    ) throws {
        for route in options.routes where !backends.contains(where: { $0.group == route.group }) {
            throw SwitchError.unknownGroup(route.description)
        }
        let plan = RoutingPlan(backends: backends, options: options)
        let backends = try SwitchBackends(
            backends,
            policy: policy,
            maxConnections: maxConnectionsPerBackend,
            slowStart: slowStart,
            healthCheck: healthCheck,
            healthCheckInterval: healthCheckInterval,
            logger: logger
        )
        self.backends = backends
        self.balancer = backends.balancer
        self.listener = listener
        self.address = listener.address
        self.loops = try (0..<max(1, threads)).map { index in
            try HTTPLoop(
                thread: SwitchThread(name: "ferry-switch-\(index)", listener: listener.fd),
                balancer: backends.balancer,
                addresses: backends.addresses,
                plan: plan,
                logger: logger
            )
        }
        try backends.start(self.loops)
    }

    public func checkHealthNow() {
        self.backends.healthChecker.checkAll()
    }

    /// Stops accepting and closes every connection.
    public func stop() { self.backends.stop(self.loops) }

    /// Stops accepting; requests in progress finish (their answers say `Connection: close`),
    /// idle keep-alive connections close, and then the threads end.
    public func retire() { self.backends.retire(self.loops) }
}

/// What routing needs, worked out once: each route's backends, the default group, the backends'
/// cookie tokens.
struct RoutingPlan: Sendable {
    let options: Options
    let routes: [(route: HTTPRoute, outside: Set<Int>)]
    /// Backends a request no route matches may not go to.
    let outsideDefault: Set<Int>
    let tokens: [String]
    let tokenIndex: [String: Int]
    let backendCount: Int

    typealias Options = HTTPSwitch.Options

    init(backends: [BackendSpec], options: Options) {
        self.options = options
        let all = Set(backends.indices)
        self.routes = options.routes.map { route in
            (route, all.subtracting(backends.indices.filter { backends[$0].group == route.group }))
        }
        let ungrouped = backends.indices.filter { backends[$0].group == nil }
        self.outsideDefault = ungrouped.isEmpty ? [] : all.subtracting(ungrouped)
        self.tokens = backends.map { String(Balancer.hash(Array($0.address.description.utf8)), radix: 16) }
        self.tokenIndex = Dictionary(self.tokens.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        self.backendCount = backends.count
    }

    /// The backends a request may not go to, by the first route it matches.
    func outside(host: String, path: Substring, values: (String) -> [String]) -> Set<Int> {
        for entry in self.routes where entry.route.matches(host: host, path: path, values: values) {
            return entry.outside
        }
        return self.outsideDefault
    }

    /// The backend a request's sticky cookie names, if it names one.
    func stickyBackend(_ cookies: [String]) -> Int? {
        guard let name = self.options.stickyCookie else { return nil }
        for field in cookies {
            for pair in field.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " }
                guard trimmed.hasPrefix(name + "=") else { continue }
                return self.tokenIndex[String(trimmed.dropFirst(name.count + 1))]
            }
        }
        return nil
    }
}

/// A table from descriptors to what owns them, indexed by the descriptor itself.
struct Owners<Owner> {
    private var slots: [Owner?] = []

    subscript(fd: CInt) -> Owner? {
        get { Int(fd) < self.slots.count ? self.slots[Int(fd)] : nil }
        set {
            if Int(fd) >= self.slots.count {
                guard newValue != nil else { return }
                self.slots += Array(repeating: nil, count: max(Int(fd) + 1 - self.slots.count, 64))
            }
            self.slots[Int(fd)] = newValue
        }
    }
}

/// What an edge-triggered socket is known to allow: set by its events, cleared when a read
/// comes back short or a write does not take everything.
struct Readiness {
    var readable = true
    var writable = true

    mutating func note(_ events: UInt32) {
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
            self.readable = true
        }
        if events & (EPOLLOUT.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { self.writable = true }
    }
}

/// A connection to a backend, carrying one exchange's request at a time.
final class Upstream {
    let fd: CInt
    let backend: Int
    @exclusivity(unchecked) var connected: Bool
    /// Taken from the idle pool: a failure before any answer may only mean it timed out there.
    let reused: Bool
    @exclusivity(unchecked) var input = ByteBuffer()
    @exclusivity(unchecked) var output = ByteBuffer()
    @exclusivity(unchecked) var parser: HTTPResponseParser
    /// The answer's status, once its head has come.
    @exclusivity(unchecked) var status: Int?
    @exclusivity(unchecked) var body = BodyFraming(.complete)
    @exclusivity(unchecked) var keepAlive = true
    @exclusivity(unchecked) var ready = Readiness()

    init(fd: CInt, backend: Int, connected: Bool, maxHeadLength: Int) {
        self.fd = fd
        self.backend = backend
        self.connected = connected
        self.reused = connected
        self.parser = HTTPResponseParser(maxHeadLength: maxHeadLength)
    }
}

/// One client connection and the request it has in progress.
/// The loop's classes are touched by one thread only, so their stored properties skip the
/// runtime's exclusivity checks (`@exclusivity(unchecked)`), which otherwise cost more than the
/// parsing on this path.
final class HTTPExchange {
    enum Phase {
        /// Between requests: reading a request head.
        case awaitingRequest
        /// A request is on its way to a backend, or its answer on its way back.
        case forwarding
        /// An answer of the switch's own (an error) is being written; then the connection closes.
        case closing
    }

    let client: CInt
    let clientAddress: [UInt8]
    @exclusivity(unchecked) var phase = Phase.awaitingRequest
    @exclusivity(unchecked) var input = ByteBuffer()
    @exclusivity(unchecked) var output = ByteBuffer()
    @exclusivity(unchecked) var parser: HTTPRequestParser
    /// When the current wait (for a request, or for a backend) gives up, in monotonic nanoseconds.
    @exclusivity(unchecked) var deadline: UInt64 = 0
    @exclusivity(unchecked) var clientEnded = false
    @exclusivity(unchecked) var clientReady = Readiness()
    /// Body bytes passed on straight from the backend connection's buffer (a slice sharing its
    /// storage), written after `output`.
    @exclusivity(unchecked) var passing = ByteBuffer()
    /// False once the connection is closed and the exchange forgotten.
    @exclusivity(unchecked) var isOpen = true
    /// The last answer is out and the writing side shut: waiting for the client to close.
    @exclusivity(unchecked) var lingering = false

    // The request in progress.
    /// The head as sent to the backend, kept to send again if the request is retried.
    @exclusivity(unchecked) var requestHead = ByteBuffer()
    @exclusivity(unchecked) var requestBody = BodyFraming(.complete)
    @exclusivity(unchecked) var method = ""
    @exclusivity(unchecked) var content = ""
    @exclusivity(unchecked) var outside: Set<Int> = []
    @exclusivity(unchecked) var tried: Set<Int> = []
    @exclusivity(unchecked) var repeatable = false
    @exclusivity(unchecked) var clientKeepAlive = true
    @exclusivity(unchecked) var minorVersion = 1
    @exclusivity(unchecked) var setCookie: String?
    @exclusivity(unchecked) var responseStarted = false
    @exclusivity(unchecked) var upstream: Upstream?

    /// The client's address as X-Forwarded-For gives it.
    let clientText: String

    var hasOutput: Bool { self.output.readableBytes > 0 || self.passing.readableBytes > 0 }

    /// Moves passed-on body bytes into `output`, so that what is written next comes after them.
    func settlePassing() {
        guard self.passing.readableBytes > 0 else { return }
        self.output.writeBuffer(&self.passing)
        self.passing = ByteBuffer()
    }

    init(client: CInt, clientAddress: [UInt8], maxHeadLength: Int) {
        self.client = client
        self.clientAddress = clientAddress
        self.clientText = PeerAddress.host(of: clientAddress)
        self.parser = HTTPRequestParser(maxHeadLength: maxHeadLength)
    }
}

/// One l7 switch thread: its clients, their backend connections and its idle pool.
final class HTTPLoop: SwitchLoop, @unchecked Sendable {
    // Sendable: everything mutable is touched only by this loop's thread, after `start`.
    private enum Owner {
        case client(HTTPExchange)
        case upstream(HTTPExchange)
        case idle(backend: Int)
    }

    private let thread: SwitchThread
    private let balancer: Balancer
    private let addresses: [SocketAddress]
    private let plan: RoutingPlan
    private let logger: Logger
    /// Who each descriptor belongs to, indexed by the descriptor (they are small numbers).
    @exclusivity(unchecked) private var owners = Owners<Owner>()
    @exclusivity(unchecked) private var idle: [[CInt]]
    @exclusivity(unchecked) private var clients: [CInt: HTTPExchange] = [:]
    /// Retired by a reload: no keep-alive beyond the answer in progress.
    private let retiring = Atomic(false)
    private let clientTimeout: UInt64
    private let backendTimeout: UInt64
    /// Bytes a connection may have waiting to be written before its source stops being read.
    private static let outputLimit = 256 << 10
    private static let readSize = 64 << 10
    private static let repeatableMethods: Set<String> = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]

    init(thread: SwitchThread, balancer: Balancer, addresses: [SocketAddress], plan: RoutingPlan, logger: Logger) {
        self.thread = thread
        self.balancer = balancer
        self.addresses = addresses
        self.plan = plan
        self.logger = logger
        self.idle = Array(repeating: [], count: addresses.count)
        self.clientTimeout = plan.options.clientTimeout.wholeNanoseconds
        self.backendTimeout = plan.options.backendTimeout.wholeNanoseconds
    }

    func start() throws {
        try self.thread.start(
            onListener: { self.acceptAll() },
            onEvent: { fd, events in self.handle(fd, events) },
            tick: 100,
            onTick: { self.expire() },
            onStop: {
                for exchange in Array(self.clients.values) { self.close(exchange) }
                for pool in self.idle { for fd in pool { Glibc.close(fd) } }
            }
        )
    }

    func stop() { self.thread.stop() }

    func retire() {
        self.retiring.store(true, ordering: .relaxed)
        self.thread.retire { self.clients.isEmpty }
    }

    // MARK: Events

    private func acceptAll() {
        while let client = BoundSocket.accept(
            on: self.thread.listener,
            failed: { self.logger.warning("switch: \($0)") }
        ) {
            let exchange = HTTPExchange(
                client: client,
                clientAddress: PeerAddress.peer(of: client)?.bytes ?? [],
                maxHeadLength: self.plan.options.maxHeadLength
            )
            exchange.deadline = MonotonicClock.nanoseconds() + self.clientTimeout
            do {
                try self.thread.watch(
                    client,
                    EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
                )
            } catch {
                Glibc.close(client)
                continue
            }
            self.owners[client] = .client(exchange)
            self.clients[client] = exchange
            self.drive(exchange)
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
            self.idle[backend].removeAll { $0 == fd }
            self.owners[fd] = nil
            Glibc.close(fd)
        case nil:
            break
        }
    }

    /// Gives up on waits that ran past their deadline: a client slow to send its request, a
    /// backend slow to answer.
    private func expire() {
        let now = MonotonicClock.nanoseconds()
        if self.retiring.load(ordering: .relaxed) {
            for exchange in Array(self.clients.values)
            where exchange.phase == .awaitingRequest && exchange.input.readableBytes == 0 {
                self.close(exchange)
            }
        }
        for exchange in Array(self.clients.values) where exchange.deadline != 0 && exchange.deadline < now {
            switch exchange.phase {
            case .awaitingRequest:
                if exchange.input.readableBytes == 0 {
                    self.close(exchange)  // idle between requests, or never spoke: just close
                } else {
                    self.refuse(
                        exchange,
                        status: 408,
                        reason: "Request Timeout",
                        "the request head did not arrive in time"
                    )
                }
            case .forwarding:
                self.logger.warning("switch: backend took too long to answer \(exchange.method) \(exchange.content)")
                self.failUpstream(
                    exchange,
                    status: 504,
                    reason: "Gateway Timeout",
                    "the backend did not answer in time"
                )
            case .closing:
                self.close(exchange)
            }
            if exchange.isOpen { self.drive(exchange) }
        }
    }

    // MARK: Driving an exchange

    /// Makes every step the exchange's sockets allow, until none can be made: with
    /// edge-triggered events, a step not taken now might not be signalled again.
    private func drive(_ exchange: HTTPExchange) {
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
            if exchange.phase == .closing {
                if !exchange.hasOutput { self.linger(exchange) }
                return
            }
            if let upstream = exchange.upstream {
                if !upstream.connected {
                    guard self.finishConnect(exchange, upstream) else { continue }
                    progress = true
                }
                switch self.flush(&upstream.output, to: upstream.fd, &upstream.ready) {
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
                    switch self.read(upstream.fd, &upstream.ready, into: &upstream.input) {
                    case .data:
                        progress = true
                        if upstream.status != nil {
                            exchange.deadline = MonotonicClock.nanoseconds() + self.backendTimeout
                        }
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
                exchange.phase == .awaitingRequest
                || (exchange.phase == .forwarding && !exchange.requestBody.isComplete)
            if wantsRequestBytes, !exchange.clientEnded, exchange.input.readableBytes < Self.outputLimit {
                switch self.read(exchange.client, &exchange.clientReady, into: &exchange.input) {
                case .data: progress = true
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

    /// Starts the next request, or passes on more of the current one's body. Returns whether it
    /// did anything.
    private func advanceRequest(_ exchange: HTTPExchange) -> Bool {
        switch exchange.phase {
        case .closing:
            return false
        case .awaitingRequest:
            let request: RequestStart
            do {
                var parsed: RequestStart?
                if var head = try exchange.parser.nextHead(&exchange.input) {
                    parsed = try head.withUnsafeReadableBytes { raw throws(HTTPRequestParser.Error) in
                        try self.read(request: raw, parser: exchange.parser, from: exchange)
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
            } catch {
                self.refuse(exchange, status: 400, reason: "Bad Request", error.description)
            }
            return true
        }
    }

    /// What the switch takes from a request head: enough to route it, frame its body and send
    /// it on, with the head as the backend gets it already written.
    struct RequestStart {
        var method: String
        /// The target's path, without the query: the content LARD goes by.
        var path: String
        var minorVersion: Int
        var fields: ForwardedFields
        var outside: Set<Int>
        var sticky: Int?
        var head: ByteBuffer
    }

    /// Reads a request head from its raw bytes: the request line and fields are checked, and the
    /// head for the backend is written (fields passed on as they came, hop-by-hop ones dropped,
    /// the client's address added to X-Forwarded-For).
    private func read(
        request raw: UnsafeRawBufferPointer,
        parser: HTTPRequestParser,
        from exchange: HTTPExchange
    ) throws(HTTPRequestParser.Error) -> RequestStart {
        let line = try HTTPRequestParser.requestLine(raw)
        let fields = try ForwardedFields(raw, from: line.fieldsStart, parser: parser)
        if line.minorVersion == 1, !fields.hasHost { throw .missingHost }
        let target = UnsafeRawBufferPointer(rebasing: raw[line.target])
        let pathEnd = target.firstIndex(of: UInt8(ascii: "?")) ?? target.count
        let path = HTTPRequestParser.text(raw, line.target.lowerBound..<line.target.lowerBound + pathEnd)
        let outside =
            self.plan.routes.isEmpty
            ? self.plan.outsideDefault
            : self.plan.outside(host: fields.host(in: raw), path: path[...]) { fields.values($0, in: raw) }
        let sticky =
            self.plan.options.stickyCookie == nil ? nil : self.plan.stickyBackend(fields.values("cookie", in: raw))

        var head = ByteBuffer()
        head.reserveCapacity(raw.count + 64)
        head.writeBytes(UnsafeRawBufferPointer(rebasing: raw[line.method]))
        head.writeStaticString(" ")
        head.writeBytes(target)
        head.writeStaticString(" HTTP/1.1\r\n")
        fields.writePassedOn(raw, to: &head, exceptForwardedFor: true)
        if fields.acceptsTrailers { head.writeStaticString("TE: trailers\r\nConnection: TE\r\n") }
        head.writeStaticString("X-Forwarded-For: ")
        if let earlier = fields.forwardedFor {
            head.writeString(earlier)
            head.writeStaticString(", ")
        }
        head.writeString(exchange.clientText)
        head.writeStaticString("\r\n\r\n")
        return RequestStart(
            method: HTTPRequestParser.text(raw, line.method),
            path: path,
            minorVersion: line.minorVersion,
            fields: fields,
            outside: outside,
            sticky: sticky,
            head: head
        )
    }

    /// Frames a read request's body, picks its backend and queues its head for it.
    private func begin(_ request: RequestStart, on exchange: HTTPExchange) {
        let fields = request.fields
        if fields.contentLengthCount > 1 {
            return self.refuse(exchange, status: 400, reason: "Bad Request", "more than one Content-Length header")
        }
        if !fields.contentLengthIsNumber {
            return self.refuse(exchange, status: 400, reason: "Bad Request", "Content-Length is not a number")
        }
        if !fields.transferEncoding.isEmpty {
            guard fields.contentLengthCount == 0 else {
                return self.refuse(
                    exchange,
                    status: 400,
                    reason: "Bad Request",
                    "\(HTTPRequestParser.Error.conflictingBodyLength)"
                )
            }
            guard fields.endsChunked, request.minorVersion == 1 else {
                return self.refuse(
                    exchange,
                    status: 400,
                    reason: "Bad Request",
                    "Transfer-Encoding must end in chunked (HTTP/1.1), got '\(fields.transferEncoding.joined(separator: ", "))'"
                )
            }
            exchange.requestBody = .chunked()
        } else if let length = fields.contentLength, length > 0 {
            exchange.requestBody = BodyFraming(.length(remaining: length))
        } else {
            exchange.requestBody = BodyFraming(.complete)
        }
        exchange.minorVersion = request.minorVersion
        exchange.clientKeepAlive = fields.keepAlive(minorVersion: request.minorVersion)
        exchange.method = request.method
        exchange.content = request.path
        exchange.outside = request.outside
        exchange.tried = []
        exchange.repeatable = exchange.requestBody.isComplete && Self.repeatableMethods.contains(request.method)
        exchange.responseStarted = false
        exchange.setCookie = nil
        exchange.requestHead = request.head
        exchange.phase = .forwarding
        exchange.deadline = MonotonicClock.nanoseconds() + self.backendTimeout
        self.connectUpstream(exchange, sticky: request.sticky)
    }

    /// Gives the exchange a backend connection (a pooled one when the request may be repeated,
    /// else a fresh one) with the request head queued on it; answers 502/503 when none is left.
    private func connectUpstream(_ exchange: HTTPExchange, sticky: Int? = nil) {
        let excluded = exchange.tried.isEmpty ? exchange.outside : exchange.outside.union(exchange.tried)
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
        guard let backend = chosen else {
            if exchange.tried.isEmpty {
                self.refuse(
                    exchange,
                    status: 503,
                    reason: "Service Unavailable",
                    "no backend is available for this request"
                )
            } else {
                self.refuse(exchange, status: 502, reason: "Bad Gateway", "no backend could answer this request")
            }
            return
        }
        exchange.tried.insert(backend)
        if self.plan.options.stickyCookie != nil, sticky != backend {
            exchange.setCookie = self.plan.tokens[backend]
        }
        let upstream: Upstream
        // Only a request that may be repeated rides a pooled connection, which its backend may
        // have closed a moment ago; others get a fresh one, as HAProxy's "http-reuse safe" does.
        if exchange.repeatable, let fd = self.idle[backend].popLast() {
            upstream = Upstream(
                fd: fd,
                backend: backend,
                connected: true,
                maxHeadLength: self.plan.options.maxHeadLength
            )
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
        var head = exchange.requestHead
        upstream.output.writeBuffer(&head)
        self.owners[upstream.fd] = .upstream(exchange)
        exchange.upstream = upstream
    }

    /// Whether a connect in progress has finished; a failed one moves the request on.
    private func finishConnect(_ exchange: HTTPExchange, _ upstream: Upstream) -> Bool {
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

    /// Parses the answer's head and passes on what of its body has come. Returns whether it did anything.
    private func advanceResponse(_ exchange: HTTPExchange, _ upstream: Upstream) -> Bool {
        guard upstream.input.readableBytes > 0 else { return false }
        if upstream.status == nil {
            let head: ResponseStart
            do {
                guard var raw = try upstream.parser.nextHead(&upstream.input) else { return false }
                let parsed = try raw.withUnsafeReadableBytes { raw throws(HTTPRequestParser.Error) in
                    try self.read(response: raw, parser: upstream.parser.fieldRules, for: exchange)
                }
                head = parsed
            } catch {
                self.logger.warning(
                    "switch: backend \(self.balancer.backends[upstream.backend].spec.address) answered \(exchange.method) \(exchange.content) with something that is not HTTP: \(error)"
                )
                self.failUpstream(
                    exchange,
                    status: 502,
                    reason: "Bad Gateway",
                    "the backend's answer was not valid HTTP"
                )
                return true
            }
            self.startResponse(exchange, upstream, head)
            guard exchange.upstream === upstream else { return true }
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
            self.logger.warning("switch: backend \(self.balancer.backends[upstream.backend].spec.address): \(error)")
            self.close(exchange)
            return true
        }
        if upstream.body.isComplete { self.finishResponse(exchange, upstream) }
        return true
    }

    /// What the switch takes from an answer's head, with the head as the client gets it.
    struct ResponseStart {
        var status: Int
        var minorVersion: Int
        var fields: ForwardedFields
        /// The status line and the fields passed on, without the end of the head: what the
        /// switch adds for this hop follows.
        var head: ByteBuffer
    }

    /// Reads an answer's head from its raw bytes and writes the head the client gets.
    private func read(
        response raw: UnsafeRawBufferPointer,
        parser: HTTPRequestParser,
        for exchange: HTTPExchange
    ) throws(HTTPRequestParser.Error) -> ResponseStart {
        let line = try HTTPResponseParser.statusLine(raw)
        let fields = try ForwardedFields(raw, from: line.fieldsStart, parser: parser)
        if fields.contentLengthCount > 1 || (fields.contentLengthCount > 0 && !fields.transferEncoding.isEmpty)
            || !fields.contentLengthIsNumber
        {
            throw .conflictingBodyLength
        }
        var head = ByteBuffer()
        head.reserveCapacity(raw.count + 64)
        head.writeStaticString("HTTP/1.1 ")
        head.writeBytes(UnsafeRawBufferPointer(rebasing: raw[9..<12]))  // the status code
        head.writeStaticString(" ")
        head.writeBytes(UnsafeRawBufferPointer(rebasing: raw[line.reason]))
        head.writeStaticString("\r\n")
        if line.status >= 200 { fields.writePassedOn(raw, to: &head, exceptForwardedFor: false) }
        return ResponseStart(status: line.status, minorVersion: line.minorVersion, fields: fields, head: head)
    }

    /// Queues the answer's head for the client, with what this hop adds.
    private func startResponse(_ exchange: HTTPExchange, _ upstream: Upstream, _ start: ResponseStart) {
        if start.status == 101 {
            // The switch passes no Upgrade on, so a switch of protocols is the backend's mistake.
            return self.failUpstream(
                exchange,
                status: 502,
                reason: "Bad Gateway",
                "the backend switched protocols unasked"
            )
        }
        var head = start.head
        if start.status < 200 {
            // 100 Continue and the like go straight on; the real answer follows.
            exchange.settlePassing()
            head.writeStaticString("\r\n")
            exchange.output.writeBuffer(&head)
            return
        }
        let fields = start.fields
        if exchange.method == "HEAD" || start.status == 204 || start.status == 304 {
            upstream.body = BodyFraming(.complete)
        } else if !fields.transferEncoding.isEmpty {
            upstream.body = .chunked()
        } else if let length = fields.contentLength {
            upstream.body = BodyFraming(length == 0 ? .complete : .length(remaining: length))
        } else {
            upstream.body = BodyFraming(.untilClose)
        }
        upstream.keepAlive = fields.keepAlive(minorVersion: start.minorVersion) && upstream.body.kind != .untilClose
        // The client connection outlives this answer only if the answer has a length it can see,
        // and the switch is not retiring.
        if upstream.body.kind == .untilClose || !exchange.requestBody.isComplete
            || self.retiring.load(ordering: .relaxed)
        {
            exchange.clientKeepAlive = false
        }
        upstream.status = start.status
        exchange.responseStarted = true
        if let token = exchange.setCookie, let name = self.plan.options.stickyCookie {
            head.writeString("Set-Cookie: \(name)=\(token); Path=/; HttpOnly\r\n")
        }
        if !exchange.clientKeepAlive {
            head.writeStaticString("Connection: close\r\n")
        } else if exchange.minorVersion == 0 {
            head.writeStaticString("Connection: keep-alive\r\n")
        }
        head.writeStaticString("\r\n")
        exchange.settlePassing()
        exchange.output.writeBuffer(&head)
        exchange.deadline = MonotonicClock.nanoseconds() + self.backendTimeout
    }

    /// The answer is complete: the backend connection goes back to the pool (if it can be
    /// reused) and the client's next request may start.
    private func finishResponse(_ exchange: HTTPExchange, _ upstream: Upstream) {
        self.dropUpstream(exchange, reusable: upstream.keepAlive && exchange.requestBody.isComplete)
        guard exchange.clientKeepAlive, !exchange.clientEnded else {
            exchange.phase = .closing
            exchange.deadline = MonotonicClock.nanoseconds() + self.clientTimeout
            return
        }
        exchange.phase = .awaitingRequest
        exchange.deadline = MonotonicClock.nanoseconds() + self.clientTimeout
    }

    /// The backend closed its side.
    private func upstreamEnded(_ exchange: HTTPExchange, _ upstream: Upstream) {
        if upstream.status != nil, upstream.body.kind == .untilClose {
            // The answer ran until close, as it said it would: whatever came is all of it.
            _ = self.advanceResponse(exchange, upstream)
            upstream.body = BodyFraming(.complete)
            upstream.keepAlive = false
            self.finishResponse(exchange, upstream)
            return
        }
        if upstream.status != nil, upstream.input.readableBytes > 0 {
            _ = self.advanceResponse(exchange, upstream)
            if exchange.upstream !== upstream { return }
        }
        self.upstreamFailed(exchange, reason: "it closed the connection before answering in full")
    }

    /// The backend connection broke: the request goes to another backend if nothing of the
    /// answer was sent and it may be repeated; else the client gets 502 (or, mid-answer, a close).
    private func upstreamFailed(_ exchange: HTTPExchange, reason: String) {
        guard let upstream = exchange.upstream else { return }
        let address = self.balancer.backends[upstream.backend].spec.address
        if exchange.responseStarted {
            self.logger.warning(
                "switch: backend \(address) broke off its answer to \(exchange.method) \(exchange.content): \(reason)"
            )
            self.dropUpstream(exchange, reusable: false)
            self.close(exchange)
            return
        }
        self.dropUpstream(exchange, reusable: false)
        if exchange.repeatable {
            if upstream.reused {
                // A pooled connection its backend had closed says nothing of the backend: the
                // same one may take the request again (each retry uses up a pooled connection,
                // then comes a fresh one).
                exchange.tried.remove(upstream.backend)
            } else {
                self.logger.warning(
                    "switch: backend \(address) failed \(exchange.method) \(exchange.content) (\(reason)); trying another backend"
                )
            }
            self.connectUpstream(exchange)
            return
        }
        self.logger.warning(
            "switch: backend \(address) failed \(exchange.method) \(exchange.content) (\(reason)); it may not be repeated"
        )
        self.refuse(exchange, status: 502, reason: "Bad Gateway", "the backend failed before answering")
    }

    /// Answers `status` for a backend that failed, unless part of the real answer is already out.
    private func failUpstream(_ exchange: HTTPExchange, status: Int, reason: String, _ message: String) {
        self.dropUpstream(exchange, reusable: false)
        if exchange.responseStarted {
            self.close(exchange)
        } else {
            self.refuse(exchange, status: status, reason: reason, message)
        }
    }

    private func backendUnreachable(_ backend: Int, reason: String) {
        self.balancer.connectFailed(backend)
        self.logger.warning(
            "switch: connect to backend \(self.balancer.backends[backend].spec.address) failed (\(reason)); out of rotation until a health check passes"
        )
    }

    /// Detaches the exchange's backend connection: into the idle pool, or closed.
    private func dropUpstream(_ exchange: HTTPExchange, reusable: Bool) {
        guard let upstream = exchange.upstream else { return }
        exchange.upstream = nil
        self.balancer.release(upstream.backend)
        if reusable, upstream.input.readableBytes == 0,
            self.idle[upstream.backend].count < self.plan.options.idlePerBackend
        {
            self.idle[upstream.backend].append(upstream.fd)
            self.owners[upstream.fd] = .idle(backend: upstream.backend)
        } else {
            self.owners[upstream.fd] = nil
            Glibc.close(upstream.fd)
        }
    }

    /// Answers with an error of the switch's own and closes the connection once it is written.
    private func refuse(_ exchange: HTTPExchange, status: Int, reason: String, _ message: String) {
        self.dropUpstream(exchange, reusable: false)
        let body = "ferry switch: \(message)\n"
        exchange.settlePassing()
        exchange.output.writeString(
            "HTTP/1.1 \(status) \(reason)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        )
        exchange.phase = .closing
        exchange.deadline = MonotonicClock.nanoseconds() + self.clientTimeout
        self.logger.debug("switch: answered \(status) to \(exchange.clientText): \(message)")
    }

    /// After the last answer: the switch stops writing, and reads and drops what the client still
    /// sends until it closes (or the deadline passes). Closing with unread bytes would reset the
    /// connection, and a reset can destroy the answer before the client has read it.
    private func linger(_ exchange: HTTPExchange) {
        if !exchange.lingering {
            exchange.lingering = true
            shutdown(exchange.client, CInt(SHUT_WR))
        }
        while true {
            exchange.input.clear()
            switch self.read(exchange.client, &exchange.clientReady, into: &exchange.input) {
            case .data: continue
            case .wouldBlock: return
            case .end, .failed:
                self.close(exchange)
                return
            }
        }
    }

    private func close(_ exchange: HTTPExchange) {
        guard exchange.isOpen else { return }
        exchange.isOpen = false
        self.dropUpstream(exchange, reusable: false)
        self.clients[exchange.client] = nil
        self.owners[exchange.client] = nil
        Glibc.close(exchange.client)
    }

    // MARK: Sockets

    private enum ReadResult { case data, end, wouldBlock, failed }
    private enum FlushResult { case moved, idle, failed }

    /// Reads what the socket has, unless it is known to have nothing: a read that came back
    /// short emptied it, and whatever arrives next brings a new edge.
    private func read(_ fd: CInt, _ ready: inout Readiness, into buffer: inout ByteBuffer) -> ReadResult {
        guard ready.readable else { return .wouldBlock }
        buffer.reserveCapacity(minimumWritableBytes: Self.readSize)
        let count = buffer.withUnsafeMutableWritableBytes { bytes in
            Glibc.read(fd, bytes.baseAddress, min(bytes.count, Self.readSize))
        }
        if count > 0 {
            buffer.moveWriterIndex(forwardBy: count)
            if count < Self.readSize { ready.readable = false }
            return .data
        }
        if count == 0 { return .end }
        guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else { return .failed }
        ready.readable = false
        return .wouldBlock
    }

    /// Writes the client's output and then the body passed on from a backend, in one call.
    private func flushClient(_ exchange: HTTPExchange) -> FlushResult {
        guard exchange.passing.readableBytes > 0 else {
            return self.flush(&exchange.output, to: exchange.client, &exchange.clientReady)
        }
        guard exchange.clientReady.writable else { return .idle }
        let headCount = exchange.output.readableBytes
        let sent = exchange.output.withUnsafeReadableBytes { head in
            exchange.passing.withUnsafeReadableBytes { body in
                var parts = [
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: head.baseAddress), iov_len: head.count),
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: body.baseAddress), iov_len: body.count),
                ]
                return parts.withUnsafeMutableBufferPointer { parts in
                    var message = msghdr()
                    message.msg_iov = parts.baseAddress! + (head.count == 0 ? 1 : 0)
                    message.msg_iovlen = head.count == 0 ? 1 : 2
                    return sendmsg(exchange.client, &message, CInt(MSG_NOSIGNAL))
                }
            }
        }
        guard sent > 0 else {
            guard sent < 0, errno != EAGAIN, errno != EWOULDBLOCK, errno != EINTR else {
                exchange.clientReady.writable = false
                return .idle
            }
            return .failed
        }
        let fromHead = min(sent, headCount)
        exchange.output.moveReaderIndex(forwardBy: fromHead)
        if exchange.output.readableBytes == 0 { exchange.output.clear() }
        exchange.passing.moveReaderIndex(forwardBy: sent - fromHead)
        if exchange.passing.readableBytes == 0 {
            // The backend's buffer is its own again: the next read reuses it without a copy.
            exchange.passing = ByteBuffer()
            if let upstream = exchange.upstream {
                if upstream.input.readableBytes == 0 {
                    upstream.input.clear()
                } else {
                    upstream.input.discardReadBytes()
                }
            }
        } else {
            exchange.clientReady.writable = false
        }
        return .moved
    }

    /// Writes what is waiting, unless the socket is known to be full.
    private func flush(_ buffer: inout ByteBuffer, to fd: CInt, _ ready: inout Readiness) -> FlushResult {
        guard buffer.readableBytes > 0, ready.writable else { return .idle }
        let sent = buffer.withUnsafeReadableBytes { bytes in
            send(fd, bytes.baseAddress, bytes.count, CInt(MSG_NOSIGNAL))
        }
        if sent > 0 {
            buffer.moveReaderIndex(forwardBy: sent)
            if buffer.readableBytes == 0 {
                buffer.clear()
            } else {
                ready.writable = false
            }
            return .moved
        }
        guard sent < 0, errno != EAGAIN, errno != EWOULDBLOCK, errno != EINTR else {
            ready.writable = false
            return .idle
        }
        return .failed
    }
}
