import CFerryLinux
import Logging
import NIOCore
import Synchronization

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

    init(descriptor: Int32, id: UInt64) {
        self.descriptor = descriptor
        self.id = id
    }
}

/// The front end of the iterative, thread-per-request and dispatcher models: one thread that
/// accepts, waits on all idle connections with poll(2), reads and parses requests, and hands
/// each complete request to the model's executor. A connection is out of the poll set while its
/// request runs and comes back when the response is written.
final class BlockingFrontEnd: @unchecked Sendable {
    enum Executor {
        /// Serve on the front-end thread itself: the iterative server.
        case inline
        /// Start a kernel thread for each request.
        case threadPerRequest
        /// Queue for a bounded worker pool; 503 when it is full.
        case pool(WorkerPool)
    }

    private let listener: Listener
    private let executor: Executor
    private let responder: BlockingResponder
    private let watcher: UrgentDataWatcher
    private let wakeFD: Int32
    private let returned = Mutex<[(BlockingConnection, keepAlive: Bool)]>([])
    /// Connections accepted elsewhere and handed to this server (TCP handoff), not yet taken in.
    private let adopted = Mutex<[Int32]>([])
    private let stopping = Atomic<Bool>(false)
    private let running = Atomic<Int>(0)
    private var thread: pthread_t?

    // Owned by the front-end thread.
    private var idle: [Int32: BlockingConnection] = [:]
    /// Connections with bytes buffered that may hold a whole request.
    private var ready: [BlockingConnection] = []

    init(listener: Listener, executor: Executor, responder: BlockingResponder, watcher: UrgentDataWatcher) throws {
        self.listener = listener
        self.executor = executor
        self.responder = responder
        self.watcher = watcher
        self.wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard self.wakeFD >= 0 else { throw SocketError.system("eventfd") }
    }

    deinit { close(self.wakeFD) }

    func start() {
        self.thread = try! startThread(name: "ferry-dispatch") { self.run() }
    }

    /// Stops accepting, lets requests in progress finish, and closes every connection.
    func stop() {
        self.stopping.store(true, ordering: .sequentiallyConsistent)
        self.wake()
        if let thread { pthread_join(thread, nil) }
        self.thread = nil
        if case .pool(let pool) = self.executor { pool.shutdown() }
        while self.running.load(ordering: .sequentiallyConsistent) > 0 { usleep(1000) }
        for (connection, _) in self.returned.withLock({ $0 }) { self.closeConnection(connection) }
    }

    /// Serves a connection accepted elsewhere (a switch's TCP handoff); callable from any thread.
    func adopt(_ descriptor: Int32) {
        self.adopted.withLock { $0.append(descriptor) }
        self.wake()
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(self.wakeFD, &one, 8)
    }

    private func run() {
        var pollSet: [pollfd] = []
        while !self.stopping.load(ordering: .relaxed) {
            while let connection = self.ready.popLast() { self.dispatch(connection) }

            pollSet.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: self.wakeFD, events: Int16(POLLIN), revents: 0))
            pollSet.append(pollfd(fd: self.listener.descriptor, events: Int16(POLLIN), revents: 0))
            for descriptor in self.idle.keys {
                pollSet.append(pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0))
            }
            guard poll(&pollSet, nfds_t(pollSet.count), -1) >= 0 else {
                if errno == EINTR { continue }
                self.responder.logger.error("dispatcher stopped: poll failed: \(String(cString: strerror(errno)))")
                return
            }
            if pollSet[0].revents != 0 {
                var value: UInt64 = 0
                _ = read(self.wakeFD, &value, 8)
                for (connection, keepAlive) in self.returned.withLock({ $0.drain() }) {
                    self.takeBack(connection, keepAlive: keepAlive)
                }
                for descriptor in self.adopted.withLock({ $0.drain() }) { self.takeIn(descriptor) }
            }
            if pollSet[1].revents != 0 {
                while let descriptor = self.listener.accept() { self.takeIn(descriptor) }
            }
            for entry in pollSet.dropFirst(2) where entry.revents != 0 {
                guard let connection = self.idle[entry.fd] else { continue }
                if self.receive(into: connection) {
                    self.ready.append(connection)
                } else {
                    self.idle[entry.fd] = nil
                    self.closeConnection(connection)
                }
            }
        }
        for connection in self.idle.values { self.closeConnection(connection) }
        for descriptor in self.adopted.withLock({ $0.drain() }) { close(descriptor) }
        self.idle = [:]
    }

    /// Starts waiting for a new connection's first request.
    private func takeIn(_ descriptor: Int32) {
        let connection = BlockingConnection(
            descriptor: descriptor,
            id: self.responder.registry.open(descriptor: descriptor)
        )
        self.watcher.watch(descriptor)
        self.idle[descriptor] = connection
    }

    /// Reads what the client sent. Returns `false` when the client closed or the socket failed.
    private func receive(into connection: BlockingConnection) -> Bool {
        connection.buffer.reserveCapacity(minimumWritableBytes: 16 * 1024)
        let count = connection.buffer.withUnsafeMutableWritableBytes { bytes in
            recv(connection.descriptor, bytes.baseAddress, bytes.count, 0)
        }
        if count > 0 {
            connection.buffer.moveWriterIndex(forwardBy: count)
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
            self.idle[connection.descriptor] = nil
            self.refuse(connection, .text(.badRequest, error.description), request: nil)
            self.closeConnection(connection)
            return
        }
        connection.buffer.discardReadBytes()
        self.idle[connection.descriptor] = nil
        switch self.executor {
        case .inline:
            self.responder.metrics.busyWorkers(changedBy: 1)
            let keepAlive = self.responder.serve(request, on: connection)
            self.responder.metrics.busyWorkers(changedBy: -1)
            self.takeBack(connection, keepAlive: keepAlive)
        case .threadPerRequest:
            self.running.add(1, ordering: .sequentiallyConsistent)
            do {
                try startThread(name: "ferry-request", detached: true) { [self] in
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
        self.returned.withLock { $0.append((connection, keepAlive)) }
        self.wake()
    }

    /// On the front-end thread: waits for the connection's next request, or closes it.
    private func takeBack(_ connection: BlockingConnection, keepAlive: Bool) {
        guard keepAlive else {
            self.closeConnection(connection)
            return
        }
        self.idle[connection.descriptor] = connection
        if connection.buffer.readableBytes > 0 { self.ready.append(connection) }
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
