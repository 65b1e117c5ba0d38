import CFerryLinux
import FerryHTTP
import FerryPosix
import Logging
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// One thread of the event-driven model: an epoll loop that serves its connections as
/// finite-state machines, never blocking — nginx's worker. Sockets are edge-triggered, so each
/// event drives its connection as far as the socket allows; a file read that would wait for the
/// disk (RWF_NOWAIT says so) is parked, readahead started, and retried on the loop's timer.
///
/// A connection keeps only its small ``FileConnection``; reads land in the loop's one buffer and
/// an answer's head is made in another, so only what a socket does not take at once is copied
/// into the connection.
final class FileLoop: @unchecked Sendable {
    // Sendable: everything mutable is touched only by the loop's thread, after `start`, except
    // the inbox, which is locked.
    private let loop: WakeableLoop
    let responder: BlockingResponder
    private let timeouts: ClientTimeouts
    /// A timerfd for parked transfers.
    private let timer: Int32
    /// This loop's open-file cache (``FileService/makeCache()``).
    private let openFiles: OpenFileCache?

    /// What other threads hand the loop: connections to serve, and requests to cancel.
    private struct Inbox {
        var adopted: [(fd: Int32, id: UInt64)] = []
        var cancelled: [(fd: Int32, id: UInt64, requestID: UInt64)] = []
    }
    private let inbox = NIOLockedValueBox(Inbox())

    @exclusivity(unchecked) private var connections = DescriptorTable<FileConnection>()
    @exclusivity(unchecked) private var parked: [FileConnection] = []
    /// Connections that used their turn with the client still keeping up: they go on after the
    /// loop's other events.
    @exclusivity(unchecked) private var again: [FileConnection] = []
    @exclusivity(unchecked) private var nextSweep: UInt64 = 0
    /// Every read lands here first: of a socket, or of a file piece that goes out in a chunk.
    @exclusivity(unchecked) var scratch = ByteBuffer()
    /// Where each answer's head, and each piece of a file copied rather than sent by sendfile, is made.
    @exclusivity(unchecked) var outgoing = ByteBuffer()

    /// How often deadlines are looked at: they are whole seconds, or tenths in tests.
    private static let sweepInterval: UInt64 = 100_000_000
    static let readSize = 16 << 10
    /// Requests answered per turn of a connection before the loop's other events get theirs.
    private static let requestsPerTurn = 32
    /// How long a parked transfer waits before it tries the page cache again.
    private static let parkNanoseconds = 500_000

    init(index: Int, responder: BlockingResponder, timeouts: ClientTimeouts) throws(PosixError) {
        self.loop = try WakeableLoop(name: "ferry-event-\(index)")
        self.responder = responder
        self.timeouts = timeouts
        self.timer = ferry_timer_create()
        guard self.timer >= 0 else { throw PosixError.system("timerfd_create") }
        self.openFiles = responder.files.makeCache()
        try self.loop.watch(self.timer)
    }

    deinit { Glibc.close(self.timer) }

    func start() throws(PosixError) {
        try self.loop.start(
            WakeableLoop.Policy(
                onReady: { [self] fd, events in self.handle(fd, events) },
                onWake: { [self] in self.takeInbox() },
                afterEvents: { [self] in self.afterEvents() },
                onStop: { [self] _ in
                    for connection in self.connections.owners { self.close(connection) }
                    // Handed over as the loop stopped: never served.
                    for (fd, id) in self.inbox.withLockedValue({ $0.adopted }) {
                        self.responder.registry.close(connection: id)
                        Glibc.close(fd)
                    }
                }
            ),
            tick: 100
        )
    }

    func stop() { self.loop.stop() }

    /// Serves connected socket `fd` on this loop. Callable from any thread.
    func adopt(_ fd: Int32, connectionID: UInt64) {
        self.inbox.withLockedValue { $0.adopted.append((fd, connectionID)) }
        self.loop.wake()
    }

    /// Cancels request `requestID` of connection `id` at socket `fd` if its answer is still going
    /// out. Callable from any thread.
    private func cancel(_ fd: Int32, connectionID: UInt64, requestID: UInt64) {
        self.inbox.withLockedValue { $0.cancelled.append((fd, connectionID, requestID)) }
        self.loop.wake()
    }

    // MARK: Events

    private func takeInbox() {
        let inbox = self.inbox.withLockedValue { inbox in
            defer { inbox = Inbox() }
            return inbox
        }
        for (fd, id) in inbox.adopted { self.serve(fd, id) }
        for (fd, id, requestID) in inbox.cancelled {
            // The request may have ended, and the next begun, since the cancel was sent.
            guard let connection = self.connections[fd], connection.id == id,
                connection.transfer?.requestID == requestID
            else { continue }
            self.cancelTransfer(connection)
        }
    }

    private func serve(_ fd: Int32, _ id: UInt64) {
        let connection = FileConnection(
            fd: fd,
            id: id,
            deadline: ClientDeadline(timeouts: self.timeouts, now: MonotonicClock.nanoseconds())
        )
        do {
            try self.loop.watch(
                fd,
                events: EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
            )
        } catch {
            self.responder.logger.warning("could not take connection \(id): \(error)")
            self.responder.registry.close(connection: id)
            Glibc.close(fd)
            return
        }
        self.connections[fd] = connection
        self.drive(connection)
    }

    private func handle(_ fd: Int32, _ events: UInt32) {
        if fd == self.timer {
            var fired: UInt64 = 0
            _ = Glibc.read(fd, &fired, 8)
            let parked = self.parked
            self.parked = []
            for connection in parked {
                connection.parked = false
                self.drive(connection)
            }
            return
        }
        guard let connection = self.connections[fd] else { return }
        connection.ready.note(events)
        self.drive(connection)
    }

    private func afterEvents() {
        if !self.again.isEmpty {
            let again = self.again
            self.again = []
            for connection in again {
                connection.queued = false
                self.drive(connection)
            }
        }
        let now = MonotonicClock.nanoseconds()
        if now >= self.nextSweep {
            self.nextSweep = now + Self.sweepInterval
            self.expire(now: now)
        }
    }

    /// Closes connections whose client ran out of time: 408 first when it began a head.
    private func expire(now: UInt64) {
        for connection in self.connections.owners {
            guard let wait = connection.deadline.expired(now: now), connection.isOpen else { continue }
            // Its last answer went (or is going) out: the client had the idle time to take it and hang up.
            if connection.closing {
                self.close(connection)
                continue
            }
            let reason = connection.deadline.reason(wait)
            self.responder.logger.debug("connection \(connection.id): \(reason); closing it")
            self.responder.metrics.timedOut()
            if connection.deadline.answers408(wait), !connection.isAnswering {
                self.respond(connection, .text(.requestTimeout, reason), request: nil)
                self.drive(connection)
            } else {
                self.close(connection)
            }
        }
    }

    // MARK: Driving a connection

    /// Makes every step the socket allows, until none can be made: with edge-triggered events, a
    /// step not taken now might not be signalled again.
    func drive(_ connection: FileConnection) {
        var answered = 0
        while connection.isOpen, !connection.parked {
            if connection.output.readableBytes > 0 {
                guard self.flush(connection) else { return }
            }
            if connection.transfer != nil {
                guard self.pump(connection) else { return }
                continue
            }
            if connection.closing {
                self.linger(connection)
                return
            }
            // A client that keeps the socket full of pipelined requests gets a turn, not the loop.
            guard answered < Self.requestsPerTurn else {
                self.requeue(connection)
                return
            }
            if self.serveNext(connection) {
                answered += 1
                continue
            }
            switch self.read(connection) {
            case .data: continue
            case .end, .failed:
                self.close(connection)
                return
            case .wouldBlock:
                return
            }
        }
    }

    /// After the last answer: stop writing, and read and drop what the client still sends until it
    /// hangs up (or its idle time passes). Closing with unread bytes would reset the connection,
    /// and a reset can destroy the answer before the client has read it (nginx's lingering close).
    private func linger(_ connection: FileConnection) {
        if !connection.lingering {
            connection.lingering = true
            shutdown(connection.fd, CInt(SHUT_WR))
            connection.input = ByteBuffer()
        }
        for _ in 0..<Self.requestsPerTurn {
            switch self.read(connection) {
            case .data: connection.input.clear()
            case .wouldBlock: return
            case .end, .failed:
                self.close(connection)
                return
            }
        }
        self.requeue(connection)
    }

    /// Reads what the socket has into the loop's buffer and keeps only what came.
    private func read(_ connection: FileConnection) -> EdgeReadResult {
        // A head larger than the parser takes is refused by it; more bytes are not needed to see that.
        guard connection.input.readableBytes <= connection.parser.maxHeadLength else { return .wouldBlock }
        self.scratch.clear()
        let result = connection.ready.read(connection.fd, into: &self.scratch, size: Self.readSize)
        if result == .data {
            connection.input.writeBuffer(&self.scratch)
            connection.deadline.requestBytesArrived(now: MonotonicClock.nanoseconds())
        }
        return result
    }

    /// Starts answering the next buffered request. Returns whether there was one.
    private func serveNext(_ connection: FileConnection) -> Bool {
        guard connection.input.readableBytes > 0 else { return false }
        let request: HTTPRequest
        do {
            guard let parsed = try connection.parser.parse(&connection.input) else { return false }
            request = parsed
        } catch {
            self.respond(connection, .text(.badRequest, error.description), request: nil)
            return true
        }
        // An idle connection keeps no buffer: 10,000 of them would hold one read's storage each.
        if connection.input.readableBytes == 0 {
            connection.input = ByteBuffer()
        } else {
            connection.input.discardReadBytes()
        }
        connection.deadline.headRead(bodyFollows: false, now: MonotonicClock.nanoseconds())
        self.respond(connection, self.responder.files.respond(to: request, using: self.openFiles), request: request)
        return true
    }

    /// Writes what the connection has waiting. Returns whether the socket took all of it; when
    /// it did not, the connection waits for room (or was closed, on an error).
    func flush(_ connection: FileConnection) -> Bool {
        let sent = connection.output.withUnsafeReadableBytes { bytes in
            send(connection.fd, bytes.baseAddress, bytes.count, CInt(MSG_NOSIGNAL))
        }
        if sent < 0 {
            guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else {
                self.close(connection)
                return false
            }
            self.stalled(connection)
            return false
        }
        connection.deadline.sendResumed()
        connection.output.moveReaderIndex(forwardBy: sent)
        guard connection.output.readableBytes == 0 else {
            self.stalled(connection)
            return false
        }
        // What an idle connection keeps: no buffer.
        connection.output = ByteBuffer()
        return true
    }

    /// The client must take some of what was written before the answer goes on: its clock starts.
    func stalled(_ connection: FileConnection) {
        connection.ready.writable = false
        connection.deadline.sendStalled(now: MonotonicClock.nanoseconds())
    }

    /// Sends `bytes` at once, keeping in the connection only what the socket does not take.
    func write(_ connection: FileConnection, _ bytes: inout ByteBuffer) {
        guard connection.output.readableBytes == 0 else {
            connection.output.writeBuffer(&bytes)
            return
        }
        let sent = bytes.withUnsafeReadableBytes { bytes in
            send(connection.fd, bytes.baseAddress, bytes.count, CInt(MSG_NOSIGNAL))
        }
        // A failure shows again on the next write, which the driving loop makes at once.
        if sent > 0 { connection.deadline.sendResumed() }
        bytes.moveReaderIndex(forwardBy: max(sent, 0))
        if bytes.readableBytes > 0 { connection.output.writeBuffer(&bytes) }
    }

    // MARK: Answers

    /// Starts `response`: the head and a body from memory go at once; a file body is a transfer
    /// that ``pump(_:)`` drives.
    func respond(_ connection: FileConnection, _ response: FileResponse, request: HTTPRequest?) {
        let (requestID, flag) = self.responder.registry.begin(connection: connection.id)
        var head = response.head
        let framing = ResponseFraming(
            head: &head,
            body: response.body,
            request: request,
            connectionID: connection.id,
            requestID: requestID,
            keepAlive: request?.keepAlive ?? false
        )
        self.outgoing.clear()
        head.write(to: &self.outgoing)
        guard framing.sendsBody, case .file(let file, let offset, let length) = response.body else {
            if framing.sendsBody, case .bytes(var bytes) = response.body { self.outgoing.writeBuffer(&bytes) }
            self.write(connection, &self.outgoing)
            self.finish(
                connection,
                requestID: requestID,
                flag: flag,
                status: head.status.code,
                keepAlive: framing.keepAlive
            )
            return
        }
        var position = offset
        // Head and body straight to the socket when they can go so; what it did not take goes below.
        if !framing.chunked, length > 0, connection.output.readableBytes == 0,
            case .sent(let count) = self.sendDirectly(connection, head: self.outgoing, file, offset, length)
        {
            let headLength = self.outgoing.readableBytes
            self.outgoing.moveReaderIndex(forwardBy: min(count, headLength))
            position += max(count - headLength, 0)
        }
        if self.outgoing.readableBytes > 0 { self.write(connection, &self.outgoing) }
        connection.transfer = FileConnection.Transfer(
            file: file,
            position: position,
            end: offset + length,
            framing: framing,
            requestID: requestID,
            flag: flag
        )
        let (fd, id) = (connection.fd, connection.id)
        flag.onCancel { [self] in self.cancel(fd, connectionID: id, requestID: requestID) }
    }

    /// The answer is written: the next request may start, or the connection closes.
    func finish(
        _ connection: FileConnection,
        requestID: UInt64,
        flag: CancellationFlag,
        status: Int,
        keepAlive: Bool
    ) {
        self.responder.registry.end(connection: connection.id, requestID: requestID)
        self.responder.metrics.served(status: status, flag: flag)
        let now = MonotonicClock.nanoseconds()
        connection.deadline.answered(now: now)
        guard keepAlive else {
            connection.closing = true
            return
        }
        if connection.input.readableBytes > 0 { connection.deadline.requestBytesArrived(now: now) }
    }

    /// Puts a connection whose turn ended behind the loop's other events.
    func requeue(_ connection: FileConnection) {
        guard !connection.queued else { return }
        connection.queued = true
        if self.again.isEmpty { self.loop.wake() }
        self.again.append(connection)
    }

    /// Waits for the page cache: readahead is under way, so the timer tries again shortly.
    func park(_ connection: FileConnection) {
        connection.parked = true
        if self.parked.isEmpty { _ = ferry_timer_arm(self.timer, Self.parkNanoseconds) }
        self.parked.append(connection)
    }

    private func cancelTransfer(_ connection: FileConnection) {
        guard let transfer = connection.transfer, connection.isOpen else { return }
        connection.transfer = nil
        self.responder.metrics.cancelled()
        guard transfer.framing.chunked else {
            self.responder.logger.debug(
                "request \(transfer.requestID) of connection \(connection.id) cancelled mid-body; closing the connection, since its framing cannot end early"
            )
            self.responder.registry.end(connection: connection.id, requestID: transfer.requestID)
            self.close(connection)
            return
        }
        self.end(transfer, of: connection, complete: false)
        self.drive(connection)
    }

    func close(_ connection: FileConnection) {
        guard connection.isOpen else { return }
        connection.isOpen = false
        connection.transfer = nil
        self.connections[connection.fd] = nil
        // Out of the registry first: the urgent-data watcher must not ask a number reused.
        self.responder.registry.close(connection: connection.id)
        Glibc.close(connection.fd)
    }
}
