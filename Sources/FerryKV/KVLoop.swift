import CFerryLinux
import FerryPosix
import FerryWire
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One thread of the key-value service's own front end: an epoll loop, one per core, that takes
/// connections off the listening socket it shares with the other loops, reads all a socket has
/// at once, answers every get in it from the store's memory on the spot, and sends the answers of
/// a read in one write — Redis's event loop. The writes it read in one turn it commits together
/// at the end of the turn, on its own thread when no commit is under way (as Redis syncs its log
/// in `beforeSleep`); a write committed by another loop's commit comes back through the inbox.
///
/// NIO's pipeline cost a get twice Redis's CPU (`Benchmarks/kv.sh`): a wake-up of its own per
/// read, its handlers and the casts between them. With cluster credentials every connection
/// speaks TLS, decrypted and sealed here on the loop's thread (``TLSServerSession``).
final class KVLoop: @unchecked Sendable {
    // Sendable: everything mutable is touched only by the loop's thread, after `start`, except
    // the inbox, which is locked.
    private let loop: WakeableLoop
    /// Held by every loop, so that its descriptor stays this socket's while any loop runs.
    private let listener: TCPListener
    private let store: any KVStorage
    private let local: KVStore?
    /// Every connection speaks TLS when set.
    private let credentials: ClusterCredentials?
    private let logger: Logger

    /// Answers that came back from the store's writer (or from a database server), to send.
    private let inbox = NIOLockedValueBox<[(fd: Int32, id: UInt64, answer: KVAnswer)]>([])
    /// Set while the loop commits writes itself: it takes its inbox once the commit returns, so an
    /// answer delivered meanwhile, by any thread, is in it by then and needs no wake (an eventfd
    /// write, and a turn of the loop to read it, for every commit: a third of one client's system
    /// calls a put).
    private let takingInboxNext = Atomic<Bool>(false)

    @exclusivity(unchecked) private var connections = DescriptorTable<KVConnection>()
    /// Connections that used their turn with requests still waiting: they go on after the loop's
    /// other events.
    @exclusivity(unchecked) private var again: [KVConnection] = []
    /// Every read lands here first; only the start of a request cut off at its end is copied.
    @exclusivity(unchecked) private var scratch = ByteBuffer()
    /// Over TLS, what a read decrypts to, before it takes the place of ``scratch``.
    @exclusivity(unchecked) private var plaintext = ByteBuffer()
    @exclusivity(unchecked) private var nextID: UInt64 = 0
    /// Writes read in this turn of the loop, committed together once its events are handled: one
    /// group commit for all, where handing each over as it is read would start a commit with the
    /// first while the rest are still being read (4.2 writes a sync at 16 clients, 6.7 after).
    @exclusivity(unchecked) private var writesRead: [KVQueuedWrite] = []
    /// Set when accepting failed (most likely out of descriptors): the listener is not watched
    /// until then, rather than spinning on it.
    @exclusivity(unchecked) private var acceptPausedUntil: UInt64?

    static let readSize = 64 << 10
    /// Reads of one connection per turn before the loop's other events get theirs.
    private static let readsPerTurn = 16
    /// Answers a client has not taken, past which its requests wait for it to read them.
    private static let outputLimit = 1 << 20
    private static let acceptPause: UInt64 = 100_000_000
    private static let keptOutputCapacity = 16 << 10

    init(
        index: Int,
        listener: TCPListener,
        store: any KVStorage,
        credentials: ClusterCredentials?,
        logger: Logger
    ) throws(PosixError) {
        self.loop = try WakeableLoop(name: "ferry-kv-\(index)")
        self.listener = listener
        self.store = store
        self.local = store as? KVStore
        self.credentials = credentials
        self.logger = logger
        try self.watchListener()
    }

    /// The loops share the listening socket; EPOLLEXCLUSIVE wakes one that waits, not all.
    private func watchListener() throws(PosixError) {
        try self.loop.watch(self.listener.fd, events: EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue)
    }

    /// Starts the loop's thread, which polls for `idlePoll` before sleeping while requests come
    /// closer together than that (``WakeableLoop``).
    func start(idlePoll: Duration) throws(PosixError) {
        try self.loop.start(
            WakeableLoop.Policy(
                onReady: { [self] fd, events in self.handle(fd, events) },
                onWake: { [self] in self.takeInbox() },
                afterEvents: { [self] in self.afterEvents() },
                onStop: { [self] _ in
                    for connection in self.connections.owners { self.close(connection) }
                    // None outlives the loop's thread: a TLS session is freed on its own thread.
                    self.again = []
                }
            ),
            tick: 100,
            idlePoll: idlePoll
        )
    }

    /// Closes every connection and ends the loop's thread. Requests in flight go unanswered.
    func stop() { self.loop.stop() }

    // MARK: Events

    private func handle(_ fd: Int32, _ events: UInt32) {
        if fd == self.listener.fd {
            self.accept()
            return
        }
        guard let connection = self.connections[fd] else { return }
        connection.ready.note(events)
        self.drive(connection)
    }

    /// Takes the connections waiting, a few a wake: the listener is level-triggered, so what is
    /// left wakes a loop again, and the loops share the burst of a crowd connecting at once.
    private func accept() {
        for _ in 0..<8 {
            var failure: PosixError?
            guard let fd = self.listener.accept(failed: { failure = $0 }) else {
                if let failure {
                    self.logger.warning("cannot accept connections: \(failure); trying again in 100 ms")
                    self.loop.unwatch(self.listener.fd)
                    self.acceptPausedUntil = MonotonicClock.nanoseconds() + Self.acceptPause
                }
                return
            }
            var tls: TLSServerSession?
            if let credentials = self.credentials {
                do {
                    tls = try TLSServerSession(credentials: credentials)
                } catch {
                    self.logger.warning("could not take a kv connection: its TLS could not start: \(error)")
                    Glibc.close(fd)
                    continue
                }
            }
            let connection = KVConnection(fd: fd, id: self.nextID, tls: tls)
            self.nextID += 1
            do {
                try self.loop.watch(
                    fd,
                    events: EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
                )
            } catch {
                self.logger.warning("could not take a kv connection: \(error)")
                Glibc.close(fd)
                tls?.end()
                continue
            }
            self.connections[fd] = connection
            self.drive(connection)
        }
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
        if !self.writesRead.isEmpty {
            let writes = self.writesRead
            self.writesRead.removeAll(keepingCapacity: true)
            if let local = self.local {
                // Redis's shape: the loop syncs the log itself, then sends the answers.
                self.takingInboxNext.store(true, ordering: .sequentiallyConsistent)
                local.enqueue(writes, committingHere: true)
                self.takingInboxNext.store(false, ordering: .sequentiallyConsistent)
                self.takeInbox()
            } else {
                self.store.enqueue(writes)
            }
        }
        // Their edge is spent: without a wake the loop would sleep until its tick.
        if !self.again.isEmpty { self.loop.wake() }
        if let until = self.acceptPausedUntil, MonotonicClock.nanoseconds() >= until {
            do {
                try self.watchListener()
                self.acceptPausedUntil = nil
            } catch {
                self.logger.warning("cannot watch the kv listener again: \(error); trying again in 100 ms")
                self.acceptPausedUntil = MonotonicClock.nanoseconds() + Self.acceptPause
            }
        }
    }

    // MARK: Serving a connection

    /// Reads and answers until the socket has nothing more, the client stops taking answers, or
    /// the connection's turn is over; then sends every answer made in one write.
    private func drive(_ connection: KVConnection) {
        var reads = 0
        while connection.isOpen {
            if connection.unsent >= Self.outputLimit {
                self.flush(connection)
                // The client is not reading: its next requests wait until it takes some answers.
                guard connection.isOpen, connection.unsent < Self.outputLimit else { return }
            }
            if connection.heldBack {
                // Requests read before, left until the client took enough answers.
                connection.heldBack = false
                self.scratch.clear()
                self.answerRequests(connection)
                continue
            }
            guard reads < Self.readsPerTurn else {
                if !connection.queued {
                    connection.queued = true
                    self.again.append(connection)
                }
                break
            }
            self.scratch.clear()
            switch connection.ready.read(connection.fd, into: &self.scratch, size: Self.readSize) {
            case .data:
                reads += 1
                if let tls = connection.tls {
                    guard self.decrypt(connection, tls) else { return }
                    if tls.isClosed {
                        // The peer said goodbye after its last requests: they are done, as a
                        // plain connection's are before its end, though no answer can go back.
                        self.answerRequests(connection)
                        self.flush(connection)  // the answer to its close_notify
                        self.close(connection)
                        return
                    }
                }
                self.answerRequests(connection)
            case .wouldBlock:
                self.flush(connection)
                return
            case .end, .failed:
                self.flush(connection)
                self.close(connection)
                return
            }
        }
        if connection.isOpen { self.flush(connection) }
    }

    /// Puts what was just read, decrypted, in ``scratch`` in its place: false when the peer was
    /// refused or a record failed, the connection closed.
    private func decrypt(_ connection: KVConnection, _ tls: TLSServerSession) -> Bool {
        // Answers made before are sealed first: the read may close the session.
        guard self.seal(connection, tls) else { return false }
        self.plaintext.clear()
        do {
            try tls.open(&self.scratch, into: &self.plaintext, records: &connection.records)
        } catch {
            self.logger.warning("\(HandshakeFailure.refusal(of: self.peer(of: connection), error))")
            self.flush(connection)  // the alert that says why
            self.close(connection)
            return false
        }
        swap(&self.scratch, &self.plaintext)
        return true
    }

    /// Answers the whole requests in what was just read (after what was kept from before), until
    /// the answers waiting reach the limit; keeps the rest, and the start of a request cut off.
    private func answerRequests(_ connection: KVConnection) {
        if connection.input.readableBytes > 0 {
            connection.input.writeBuffer(&self.scratch)
            self.answerRequests(connection, in: &connection.input)
            // An idle connection keeps no buffer: 10,000 of them would hold a read's storage each.
            if connection.input.readableBytes == 0 {
                connection.input = ByteBuffer()
            } else {
                connection.input.discardReadBytes()
            }
        } else {
            self.answerRequests(connection, in: &self.scratch)
            if self.scratch.readableBytes > 0 { connection.input.writeBuffer(&self.scratch) }
        }
    }

    private func answerRequests(_ connection: KVConnection, in buffer: inout ByteBuffer) {
        while connection.isOpen {
            guard connection.unsent < Self.outputLimit else {
                connection.heldBack = buffer.readableBytes > 0
                return
            }
            let frame: Frame
            do {
                guard let decoded = try connection.decoder.decode(buffer: &buffer) else { return }
                frame = decoded
            } catch {
                // Not a frame this service reads: this connection only is closed.
                self.logger.warning("closing FerryWire connection from \(self.peer(of: connection)): \(error)")
                self.close(connection)
                return
            }
            self.answer(frame, on: connection)
        }
    }

    private func answer(_ frame: Frame, on connection: KVConnection) {
        let timer = KVReply.timer(for: frame.header.kind)
        let started = timer == nil ? 0 : MonotonicClock.nanoseconds()
        let requestID = frame.header.requestID
        let (fd, id) = (connection.fd, connection.id)
        switch KVReply.to(frame, store: self.store, local: self.local) {
        case .now(let answer):
            answer.write(to: &connection.output)
            timer?.recordNanoseconds(Int64(MonotonicClock.nanoseconds() - started))
        case .write(let write):
            self.writesRead.append(
                KVQueuedWrite(write) { [self] result in
                    self.deliver(KVAnswer(result, requestID: requestID), to: fd, id: id)
                    timer?.recordNanoseconds(Int64(MonotonicClock.nanoseconds() - started))
                }
            )
        case .later(let read):
            Task { [self] in
                self.deliver(await read(), to: fd, id: id)
                timer?.recordNanoseconds(Int64(MonotonicClock.nanoseconds() - started))
            }
        }
    }

    /// Hands the loop a write's answer, from whichever thread made the commit (the loop's own, then
    /// taken at once after it). The loop is woken only when its inbox was empty: a group commit's
    /// answers cost it one wake-up.
    private func deliver(_ answer: KVAnswer, to fd: Int32, id: UInt64) {
        let wasEmpty = self.inbox.withLockedValue { inbox in
            inbox.append((fd, id, answer))
            return inbox.count == 1
        }
        // Appended before the flag is read: an answer that skips the wake is in the inbox before
        // the loop clears the flag and takes it.
        if wasEmpty, !self.takingInboxNext.load(ordering: .sequentiallyConsistent) { self.loop.wake() }
    }

    private func takeInbox() {
        let delivered = self.inbox.withLockedValue { inbox in
            defer { inbox = [] }
            return inbox
        }
        var answered: [KVConnection] = []
        for (fd, id, answer) in delivered {
            // The connection may have closed, and another taken its descriptor, meanwhile.
            guard let connection = self.connections[fd], connection.id == id else { continue }
            answer.write(to: &connection.output)
            answered.append(connection)
        }
        // One send for all of a connection's answers: the first flush takes them, the rest find none.
        for connection in answered { self.flush(connection) }
    }

    /// Sends what the connection has waiting (sealed first, over TLS), as much as the socket
    /// takes; the rest goes when it has room again (its next event drives the connection).
    private func flush(_ connection: KVConnection) {
        guard connection.isOpen else { return }
        guard let tls = connection.tls else {
            self.send(&connection.output, on: connection)
            return
        }
        guard self.seal(connection, tls) else { return }
        self.send(&connection.records, on: connection)
    }

    /// Seals the answers waiting into records: false when the session failed, the connection
    /// closed.
    private func seal(_ connection: KVConnection, _ tls: TLSServerSession) -> Bool {
        guard connection.output.readableBytes > 0 else { return true }
        do {
            try tls.seal(&connection.output, into: &connection.records)
        } catch {
            self.logger.debug("kv connection from \(self.peer(of: connection)) failed: \(error)")
            self.close(connection)
            return false
        }
        Self.emptied(&connection.output)
        return true
    }

    private func send(_ buffer: inout ByteBuffer, on connection: KVConnection) {
        guard buffer.readableBytes > 0 else { return }
        let sent = buffer.withUnsafeReadableBytes { bytes in
            Glibc.send(connection.fd, bytes.baseAddress, bytes.count, CInt(MSG_NOSIGNAL))
        }
        if sent < 0 {
            // A full socket keeps the rest until its next edge; any other failure ends the connection.
            if errno != EAGAIN, errno != EWOULDBLOCK, errno != EINTR { self.close(connection) }
            return
        }
        buffer.moveReaderIndex(forwardBy: sent)
        if buffer.readableBytes == 0 { Self.emptied(&buffer) }
    }

    /// A burst's big buffer is not kept by an idle connection; a small one is reused.
    private static func emptied(_ buffer: inout ByteBuffer) {
        if buffer.capacity > Self.keptOutputCapacity {
            buffer = ByteBuffer()
        } else {
            buffer.clear()
        }
    }

    private func peer(of connection: KVConnection) -> String {
        PeerAddress.peer(of: connection.fd).map { "\($0)" } ?? "an unknown peer"
    }

    private func close(_ connection: KVConnection) {
        guard connection.isOpen else { return }
        connection.isOpen = false
        self.loop.unwatch(connection.fd)
        self.connections[connection.fd] = nil
        Glibc.close(connection.fd)
        connection.tls?.end()
    }
}
