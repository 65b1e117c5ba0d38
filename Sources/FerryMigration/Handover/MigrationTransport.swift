import FerryPosix

/// How a migration connection's bytes travel: straight through a blocking socket
/// (``PlainMigrationTransport``), or through TLS when the node has the cluster's credentials
/// (``TLSMigrationTransport``). Each call blocks the move's thread for at most the hand-over's
/// timeout; its `send` and `receive` throw ``MigrationError/transport(_:)``.
protocol MigrationTransport: BlockingStream, AnyObject, Sendable {
    /// Whether some input is there to read now.
    var hasInput: Bool { get }
    /// Ends the connection; a send or receive blocked on it returns with an error.
    func close()
}

/// A blocking TCP socket: a move's memory goes from the guest's memory to the socket, and from
/// the socket into the buffer the target restores from, with no copy between.
final class PlainMigrationTransport: MigrationTransport, Sendable {
    let socket: BlockingSocket

    init(fd: Int32, peer: String, timeout: Duration) {
        self.socket = BlockingSocket(adopting: fd, peer: peer, patience: .eachCall(timeout))
    }

    func send(_ bytes: UnsafeRawBufferPointer) throws {
        do { try self.socket.send(bytes) } catch { throw MigrationError.transport("\(error)") }
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws {
        do { try self.socket.receive(into: buffer) } catch { throw MigrationError.transport("\(error)") }
    }

    var hasInput: Bool { self.socket.hasInput }

    func close() { self.socket.close() }
}
