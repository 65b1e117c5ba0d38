import CFerryLinux
import FerryHTTP
import FerryPosix
import Logging
import NIOCore
import Synchronization

import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(Glibc)
import Glibc
#endif

/// One client connection of a blocking-model server, owned by the front end while it waits for a
/// request and by whoever serves the request while one runs.
final class BlockingConnection: @unchecked Sendable {
    let descriptor: Int32
    let id: UInt64
    var buffer = ByteBuffer()
    var parser = HTTPRequestParser()
    /// When the client's head or idle wait runs out; looked at while the connection is idle.
    var deadline: ClientDeadline

    init(descriptor: Int32, id: UInt64, deadline: ClientDeadline) {
        self.descriptor = descriptor
        self.id = id
        self.deadline = deadline
    }
}

/// The front end of the iterative, thread-per-request and dispatcher models: one thread that
/// accepts, waits on all idle connections with poll(2), reads and parses requests, and hands
/// each complete request to the model's executor. A connection is out of the poll set while its
/// request runs and comes back when the response is written.
final class BlockingFrontEnd: @unchecked Sendable {
    // Sendable: `idle` and `ready` are touched only on the loop's thread.
    enum Executor {
        /// Serve on the front-end thread itself: the iterative server.
        case inline
        /// Start a kernel thread for each request.
        case threadPerRequest
        /// Queue for a bounded worker pool; 503 when it is full.
        case pool(WorkerPool)
    }

    private let listener: TCPListener
    private let executor: Executor
    private let responder: BlockingResponder
    private let watcher: UrgentDataWatcher
    private let loop: WakeableLoop
    private let returned = NIOLockedValueBox<[(BlockingConnection, keepAlive: Bool)]>([])
    /// Connections accepted elsewhere and handed to this server (TCP handoff), not yet taken in.
    private let adopted = NIOLockedValueBox<[Int32]>([])
    private let running = Atomic<Int>(0)
    private let timeouts: ClientTimeouts
    /// How often idle connections' deadlines are looked at, in milliseconds.
    private static let sweepInterval: Int32 = 250

    // Owned by the front-end thread.
    private var idle: [Int32: BlockingConnection] = [:]
    /// Connections with bytes buffered that may hold a whole request.
    private var ready: [BlockingConnection] = []
    private var nextSweep: UInt64 = 0

    init(
        listener: TCPListener,
        executor: Executor,
        responder: BlockingResponder,
        watcher: UrgentDataWatcher,
        timeouts: ClientTimeouts
    ) throws {
        self.listener = listener
        self.executor = executor
        self.timeouts = timeouts
        self.responder = responder
        self.watcher = watcher
        self.loop = try WakeableLoop(name: "ferry-dispatch")
        try self.loop.watch(listener.fd)
    }

    func start() throws(PosixError) {
        try self.loop.start(
            WakeableLoop.Policy(
                onReady: { [self] fd, _ in self.ready(fd) },
                onWake: { [self] in
                    for (connection, keepAlive) in self.returned.withLockedValue({ $0.drain() }) {
                        self.takeBack(connection, keepAlive: keepAlive)
                    }
                    for descriptor in self.adopted.withLockedValue({ $0.drain() }) { self.takeIn(descriptor) }
                },
                afterEvents: { [self] in
                    while let connection = self.ready.popLast() { self.dispatch(connection) }
                    self.closeExpired()
                },
                onStop: { [self] error in
                    if let error { self.responder.logger.error("dispatcher stopped: \(error)") }
                    for connection in self.idle.values { self.closeConnection(connection) }
                    for descriptor in self.adopted.withLockedValue({ $0.drain() }) { close(descriptor) }
                    self.idle = [:]
                }
            ),
            tick: Self.sweepInterval
        )
    }

    /// Stops accepting, lets requests in progress finish, and closes every connection.
    func stop() {
        self.loop.stop()
        if case .pool(let pool) = self.executor { pool.shutdown() }
        while self.running.load(ordering: .sequentiallyConsistent) > 0 { usleep(1000) }
        for (connection, _) in self.returned.withLockedValue({ $0 }) { self.closeConnection(connection) }
    }

    /// Serves a connection accepted elsewhere (a switch's TCP handoff); callable from any thread.
    func adopt(_ descriptor: Int32) {
        self.adopted.withLockedValue { $0.append(descriptor) }
        self.loop.wake()
    }

    /// On the front-end thread: the listener has connections waiting, or an idle one has bytes.
    private func ready(_ fd: Int32) {
        if fd == self.listener.fd {
            while let descriptor = self.listener.accept() { self.takeIn(descriptor) }
            return
        }
        guard let connection = self.idle[fd] else { return }
        if self.receive(into: connection) {
            self.ready.append(connection)
        } else {
            self.leaveIdle(connection)
            self.closeConnection(connection)
        }
    }

    /// Stops watching a connection that leaves the idle set (its request runs, or it closes).
    private func leaveIdle(_ connection: BlockingConnection) {
        guard self.idle.removeValue(forKey: connection.descriptor) != nil else { return }
        self.loop.unwatch(connection.descriptor)
    }

    /// Makes a connection idle: watched for its next request.
    private func enterIdle(_ connection: BlockingConnection) {
        self.idle[connection.descriptor] = connection
        do {
            try self.loop.watch(connection.descriptor)
        } catch {
            self.responder.logger.warning("connection \(connection.id): \(error); closing it")
            self.idle[connection.descriptor] = nil
            self.closeConnection(connection)
        }
    }

    /// Starts waiting for a new connection's first request.
    private func takeIn(_ descriptor: Int32) {
        guard let id = self.responder.registry.open(descriptor: descriptor, logger: self.responder.logger) else {
            return
        }
        let connection = BlockingConnection(
            descriptor: descriptor,
            id: id,
            deadline: ClientDeadline(timeouts: self.timeouts, now: MonotonicClock.nanoseconds())
        )
        self.watcher.watch(descriptor)
        self.enterIdle(connection)
    }

    /// Reads what the client sent. Returns `false` when the client closed or the socket failed.
    private func receive(into connection: BlockingConnection) -> Bool {
        connection.buffer.reserveCapacity(minimumWritableBytes: 16 * 1024)
        let count = connection.buffer.withUnsafeMutableWritableBytes { bytes in
            recv(connection.descriptor, bytes.baseAddress, bytes.count, 0)
        }
        if count > 0 {
            connection.buffer.moveWriterIndex(forwardBy: count)
            connection.deadline.requestBytesArrived(now: MonotonicClock.nanoseconds())
            return true
        }
        return count < 0 && (errno == EAGAIN || errno == EINTR)
    }

    /// Parses and hands off the next request buffered on `connection`, if a whole one is there.
    private func dispatch(_ connection: BlockingConnection) {
        let request: HTTPRequest
        do {
            guard let parsed = try connection.parser.parse(&connection.buffer) else { return }
            request = parsed
        } catch {
            self.leaveIdle(connection)
            self.refuse(connection, .text(.badRequest, error.description), request: nil)
            self.closeConnection(connection)
            return
        }
        connection.buffer.discardReadBytes()
        connection.deadline.headRead(bodyFollows: false, now: MonotonicClock.nanoseconds())
        self.leaveIdle(connection)
        switch self.executor {
        case .inline:
            self.responder.metrics.busyWorkers(changedBy: 1)
            let keepAlive = self.responder.serve(request, on: connection)
            self.responder.metrics.busyWorkers(changedBy: -1)
            self.takeBack(connection, keepAlive: keepAlive)
        case .threadPerRequest:
            self.running.add(1, ordering: .sequentiallyConsistent)
            do {
                try KernelThread.detach(name: "ferry-request") { [self] in
                    self.responder.metrics.busyWorkers(changedBy: 1)
                    let keepAlive = self.responder.serve(request, on: connection)
                    self.responder.metrics.busyWorkers(changedBy: -1)
                    self.finish(connection, keepAlive: keepAlive)
                    self.running.add(-1, ordering: .sequentiallyConsistent)
                }
            } catch {
                self.running.add(-1, ordering: .sequentiallyConsistent)
                self.responder.metrics.rejected()
                self.responder.logger.warning("answering 503: \(error)")
                var response = FileResponse.text(
                    .serviceUnavailable,
                    "the server cannot start another thread; retry shortly"
                )
                response.head.headers.add("Retry-After", "1")
                self.takeBack(connection, keepAlive: self.refuse(connection, response, request: request))
            }
        case .pool(let pool):
            let accepted = pool.submit { [self] in
                let keepAlive = self.responder.serve(request, on: connection)
                self.finish(connection, keepAlive: keepAlive)
            }
            if !accepted {
                self.responder.metrics.rejected()
                var response = FileResponse.text(
                    .serviceUnavailable,
                    "all \(pool.capacity) queue slots are taken; retry shortly"
                )
                response.head.headers.add("Retry-After", "1")
                let keepAlive = self.refuse(connection, response, request: request)
                self.takeBack(connection, keepAlive: keepAlive)
            }
        }
    }

    /// Answers on the front-end thread itself (a short error or a 503).
    @discardableResult
    private func refuse(_ connection: BlockingConnection, _ response: FileResponse, request: HTTPRequest?) -> Bool {
        let (requestID, flag) = self.responder.registry.begin(connection: connection.id)
        defer { self.responder.registry.end(connection: connection.id, requestID: requestID) }
        return self.responder.send(
            response,
            for: request,
            connectionID: connection.id,
            requestID: requestID,
            descriptor: connection.descriptor,
            flag: flag
        )
    }

    /// Gives a connection back to the front end after its request, from a worker thread.
    private func finish(_ connection: BlockingConnection, keepAlive: Bool) {
        self.returned.withLockedValue { $0.append((connection, keepAlive)) }
        self.loop.wake()
    }

    /// On the front-end thread: waits for the connection's next request, or closes it.
    private func takeBack(_ connection: BlockingConnection, keepAlive: Bool) {
        guard keepAlive else {
            self.closeConnection(connection)
            return
        }
        let now = MonotonicClock.nanoseconds()
        connection.deadline.answered(now: now)
        self.enterIdle(connection)
        if connection.buffer.readableBytes > 0 {
            connection.deadline.requestBytesArrived(now: now)
            self.ready.append(connection)
        }
    }

    /// Closes idle connections whose client ran out of time: one that began a head gets 408
    /// first (as HAProxy answers; nginx closes without a word), one that said nothing is closed.
    private func closeExpired() {
        let now = MonotonicClock.nanoseconds()
        guard now >= self.nextSweep else { return }
        self.nextSweep = now + UInt64(Self.sweepInterval) * 1_000_000
        // Collected first (closing changes `idle`), and only those that ran out: no copy of the
        // whole idle set each sweep.
        for connection in self.idle.values.filter({ $0.deadline.expired(now: now) != nil }) {
            guard let wait = connection.deadline.expired(now: now) else { continue }
            self.leaveIdle(connection)
            let reason = connection.deadline.reason(wait)
            self.responder.logger.debug("connection \(connection.id): \(reason); closing it")
            self.responder.metrics.timedOut()
            if connection.deadline.answers408(wait) {
                self.refuse(connection, .text(.requestTimeout, reason), request: nil)
            }
            self.closeConnection(connection)
        }
    }

    private func closeConnection(_ connection: BlockingConnection) {
        self.responder.registry.close(connection: connection.id)
        close(connection.descriptor)
    }
}

extension Array {
    mutating func drain() -> [Element] {
        defer { self = [] }
        return self
    }
}
