import FerryHTTP
import FerryPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The event-driven model: one epoll loop per core (a ``FileLoop``), non-blocking throughout, no
/// workers — nginx's shape.
///
/// An acceptor thread takes connections off the listening socket (so their descriptors can be
/// watched for urgent data) and gives each to a loop in turn, where it is served as a
/// finite-state machine.
final class EventDrivenFrontEnd: Sendable {
    private let listener: TCPListener
    private let loops: [FileLoop]
    private let responder: BlockingResponder
    private let watcher: UrgentDataWatcher
    private let acceptor: WakeableLoop
    private let next = Atomic<Int>(0)

    init(
        listener: TCPListener,
        loops: Int,
        responder: BlockingResponder,
        watcher: UrgentDataWatcher,
        timeouts: ClientTimeouts
    ) throws {
        self.listener = listener
        self.loops = try (0..<max(1, loops)).map { index throws(PosixError) in
            try FileLoop(index: index, responder: responder, timeouts: timeouts)
        }
        self.responder = responder
        self.watcher = watcher
        self.acceptor = try WakeableLoop(name: "ferry-accept")
        try self.acceptor.watch(listener.fd)
    }

    func start() throws(PosixError) {
        for loop in self.loops { try loop.start() }
        try self.acceptor.start(
            WakeableLoop.Policy(onReady: { [self] _, _ in
                var failure: PosixError?
                while let descriptor = self.listener.accept(failed: { failure = $0 }) { self.adopt(descriptor) }
                if let failure {
                    // Most likely out of descriptors: the listener stays readable, so pause rather
                    // than spin (nginx, too, stops accepting for a while).
                    self.responder.logger.warning("cannot accept connections: \(failure); trying again in 100 ms")
                    usleep(100_000)
                }
            })
        )
    }

    /// Stops accepting, then closes every connection.
    func stop() {
        self.acceptor.stop()
        for loop in self.loops { loop.stop() }
    }

    /// Serves a connected non-blocking socket on one of the loops: one this front end accepted,
    /// or one accepted elsewhere and handed over (TCP handoff). Callable from any thread.
    func adopt(_ descriptor: Int32) {
        guard !self.acceptor.isStopping else {
            close(descriptor)
            return
        }
        guard let connectionID = self.responder.registry.open(descriptor: descriptor, logger: self.responder.logger)
        else { return }
        self.watcher.watch(descriptor)
        let turn = self.next.wrappingAdd(1, ordering: .relaxed).oldValue
        self.loops[turn % self.loops.count].adopt(descriptor, connectionID: connectionID)
    }
}
