import FerryPosix

/// How a migration connection's bytes travel: straight through a blocking socket
/// (``PlainMigrationTransport``), or through TLS when the node has the cluster's credentials
/// (``TLSMigrationTransport``). Each call blocks the move's thread for at most the hand-over's
/// timeout.
protocol MigrationTransport: AnyObject, Sendable {
    /// Sends every byte of `bytes`, or throws ``MigrationError/transport(_:)``.
    func send(_ bytes: UnsafeRawBufferPointer) throws
    /// Fills the whole of `buffer`, or throws ``MigrationError/transport(_:)``.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws
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
