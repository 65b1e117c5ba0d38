import FerryPosix
import FerryWire
import NIOCore

/// One client of a ``KVLoop``: its socket, what it is known to allow, and the bytes that wait
/// on either side — the start of a request not yet whole, answers the socket has not taken.
/// Touched only by its loop's thread: no exclusivity checks at run time.
final class KVConnection {
    let fd: Int32
    /// Told apart from a later connection that gets the same descriptor number, for answers
    /// that come back from the writer after this one closed.
    let id: UInt64
    @exclusivity(unchecked) var ready = EdgeReadiness()
    @exclusivity(unchecked) var decoder = FrameDecoder(maxPayloadLength: KVLimits.maxPayloadLength)
    /// A request cut off at the end of a read; empty (no storage) between whole requests.
    @exclusivity(unchecked) var input = ByteBuffer()
    /// Answers, in plaintext.
    @exclusivity(unchecked) var output = ByteBuffer()
    /// The connection's TLS, when the service has cluster credentials.
    let tls: TLSServerSession?
    /// Over TLS: records not yet sent (answers sealed, the handshake's, an alert).
    @exclusivity(unchecked) var records = ByteBuffer()
    /// Whole requests wait in ``input``: answering them reached the limit of answers waiting.
    @exclusivity(unchecked) var heldBack = false
    @exclusivity(unchecked) var isOpen = true
    /// In the loop's list of connections to go on with after its other events.
    @exclusivity(unchecked) var queued = false

    init(fd: Int32, id: UInt64, tls: TLSServerSession?) {
        self.fd = fd
        self.id = id
        self.tls = tls
    }

    /// Answers the client has not taken yet, sealed or not.
    var unsent: Int { self.output.readableBytes + self.records.readableBytes }
}
