import CFerryLinux
import FerryPosix
import Logging
import Synchronization

import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(Glibc)
import Glibc
#endif

/// The backend's side of TCP handoff: a Unix socket on which a switch passes accepted client
/// connections (SCM_RIGHTS). Each descriptor that arrives is given to `adopt`, and from then on
/// the server talks to the client directly; the switch carries none of the connection's bytes.
///
/// Each switch connected to the socket gets its own receiving thread: a handoff is one
/// `recvmsg`, and a switch sends them as fast as it accepts.
public final class HandoffReceiver: Sendable {
    public let path: String
    private let listener: Int32
    private let loop: WakeableLoop
    private let adopt: @Sendable (Int32) -> Void
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    /// The switches' channels, closed at stop so their threads end.
    private let channels = NIOLockedValueBox<Set<Int32>>([])

    /// Listens at `path` (a stale socket there is replaced; any other file is refused).
    /// - Throws: ``PosixError`` naming the path when it cannot listen there.
    public init(path: String, logger: Logger, adopt: @escaping @Sendable (Int32) -> Void) throws(PosixError) {
        let listener = ferry_unix_listen(path, 64)
        guard listener >= 0 else {
            let code = errno
            throw PosixError(
                "cannot take handoffs at \(path)",
                reason: code == EEXIST
                    ? "a file that is not a socket is in the way; remove it or pick another path"
                    : String(cString: strerror(code))
            )
        }
        self.path = path
        self.listener = listener
        self.adopt = adopt
        self.logger = logger
        do {
            self.loop = try WakeableLoop(name: "ferry-handoff")
            try self.loop.watch(listener)
        } catch {
            close(listener)
            throw error
        }
        try self.loop.start(
            WakeableLoop.Policy(
                onReady: { [self] _, _ in self.acceptSwitch() },
                onStop: { [self] _ in close(self.listener) }
            )
        )
    }

    /// Stops taking handoffs and removes the socket file. Connections already handed over stay.
    public func stop() {
        guard !self.stopping.exchange(true, ordering: .sequentiallyConsistent) else { return }
        self.loop.stop()
        for channel in self.channels.withLockedValue({ $0 }) { shutdown(channel, Int32(SHUT_RDWR)) }
        unlink(self.path)
    }

    private func acceptSwitch() {
        var peer = sockaddr_storage()
        let channel = ferry_accept_blocking(self.listener, &peer)
        guard channel >= 0 else { return }
        self.channels.withLockedValue { _ = $0.insert(channel) }
        do {
            try KernelThread.detach(name: "ferry-handoff-in") { [self] in self.receive(on: channel) }
        } catch {
            self.logger.warning("cannot take handoffs from another switch: \(error)")
            self.channels.withLockedValue { _ = $0.remove(channel) }
            close(channel)
        }
    }

    private func receive(on channel: Int32) {
        defer {
            self.channels.withLockedValue { _ = $0.remove(channel) }
            close(channel)
        }
        while true {
            let descriptor = ferry_receive_descriptor(channel)
            if descriptor == -2 || self.stopping.load(ordering: .relaxed) {
                if descriptor >= 0 { close(descriptor) }
                return
            }
            guard descriptor >= 0 else {
                self.logger.warning("handoff channel at \(self.path) failed: \(String(cString: strerror(errno)))")
                return
            }
            // The switch may have accepted it blocking; the servers expect non-blocking sockets.
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            var one: Int32 = 1
            setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            self.adopt(descriptor)
        }
    }
}
