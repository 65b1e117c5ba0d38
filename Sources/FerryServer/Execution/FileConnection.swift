import FerryHTTP
import FerryPosix
import NIOCore

/// One client connection of the event-driven model, as its ``FileLoop`` serves it: idle →
/// reading a head → answering → idle. What an idle connection keeps is this object and nothing
/// else — no read or write buffer — so that 10,000 of them cost what nginx's cost.
///
/// Only its loop's thread touches it, so its state skips the runtime's exclusivity checks.
final class FileConnection {
    /// A file body going out in pieces, by sendfile or by reads copied into ``output``.
    struct Transfer {
        let file: OpenFile
        var position: Int
        let end: Int
        let framing: ResponseFraming
        let requestID: UInt64
        let flag: CancellationFlag
    }

    let fd: Int32
    let id: UInt64
    @exclusivity(unchecked) var ready = EdgeReadiness()
    /// Request bytes not parsed yet: none while idle (the loop reads into its own buffer).
    @exclusivity(unchecked) var input = ByteBuffer()
    @exclusivity(unchecked) var parser = HTTPRequestParser()
    /// Bytes of the answer the socket has not taken yet.
    @exclusivity(unchecked) var output = ByteBuffer()
    @exclusivity(unchecked) var transfer: Transfer?
    @exclusivity(unchecked) var deadline: ClientDeadline
    /// The file's next pages are being read in by the kernel: the loop's timer retries it.
    @exclusivity(unchecked) var parked = false
    /// It waits for its next turn, behind the loop's other events.
    @exclusivity(unchecked) var queued = false
    /// The last answer is being written: the connection closes once the socket has taken it.
    @exclusivity(unchecked) var closing = false
    /// The last answer is written and the write side shut: what the client still sends is dropped.
    @exclusivity(unchecked) var lingering = false
    @exclusivity(unchecked) var isOpen = true

    init(fd: Int32, id: UInt64, deadline: ClientDeadline) {
        self.fd = fd
        self.id = id
        self.deadline = deadline
    }

    /// Whether an answer is still going out: the next request waits for it.
    var isAnswering: Bool { self.transfer != nil || self.output.readableBytes > 0 }
}
