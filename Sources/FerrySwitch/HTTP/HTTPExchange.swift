import FerryHTTP
import FerryPosix
import NIOCore

/// A connection to a backend, carrying one exchange's request at a time.
///
/// The loop's classes are touched by one thread only, so their stored properties skip the
/// runtime's exclusivity checks (`@exclusivity(unchecked)`), which otherwise cost more than the
/// parsing on this path.
final class Upstream {
    let fd: CInt
    let backend: Int
    @exclusivity(unchecked) var connected: Bool
    /// Taken from the idle pool: a failure before any answer may only mean it timed out there.
    let reused: Bool
    @exclusivity(unchecked) var input = ByteBuffer()
    @exclusivity(unchecked) var output = ByteBuffer()
    @exclusivity(unchecked) var parser: HTTPResponseParser
    /// The answer's status, once its head has gone on to the client.
    @exclusivity(unchecked) var status: Int?
    /// A small answer's head, held back with its body until the whole of it has come, so that a
    /// backend that breaks it off leaves nothing sent and the request can go to another.
    @exclusivity(unchecked) var held: ResponseStart?
    @exclusivity(unchecked) var body = BodyFraming(.complete)
    @exclusivity(unchecked) var keepAlive = true
    @exclusivity(unchecked) var ready: EdgeReadiness

    /// `ready`: what a pooled connection was last known to allow; a new one may do anything.
    init(fd: CInt, backend: Int, connected: Bool, ready: EdgeReadiness = EdgeReadiness(), maxHeadLength: Int) {
        self.fd = fd
        self.ready = ready
        self.backend = backend
        self.connected = connected
        self.reused = connected
        self.parser = HTTPResponseParser(maxHeadLength: maxHeadLength)
    }
}

/// One client connection: its buffers, the request in progress, and its ``ExchangeState``.
final class HTTPExchange {
    let client: CInt
    let clientAddress: [UInt8]
    /// The client's address as X-Forwarded-For gives it.
    let clientText: String
    @exclusivity(unchecked) var state: ExchangeState
    @exclusivity(unchecked) var input = ByteBuffer()
    @exclusivity(unchecked) var output = ByteBuffer()
    @exclusivity(unchecked) var parser: HTTPRequestParser
    @exclusivity(unchecked) var clientEnded = false
    @exclusivity(unchecked) var clientReady = EdgeReadiness()
    /// Body bytes passed on straight from the backend connection's buffer (a slice sharing its
    /// storage), written after `output`.
    @exclusivity(unchecked) var passing = ByteBuffer()
    /// False once the connection is closed and the exchange forgotten.
    @exclusivity(unchecked) var isOpen = true

    // The request in progress.
    /// The head as sent to the backend, kept to send again if the request is retried.
    @exclusivity(unchecked) var requestHead = ByteBuffer()
    @exclusivity(unchecked) var requestBody = BodyFraming(.complete)
    @exclusivity(unchecked) var method = ""
    @exclusivity(unchecked) var content = ""
    @exclusivity(unchecked) var outside: Set<Int> = []
    @exclusivity(unchecked) var minorVersion = 1
    @exclusivity(unchecked) var setCookie: String?
    @exclusivity(unchecked) var upstream: Upstream?

    var hasOutput: Bool { self.output.readableBytes > 0 || self.passing.readableBytes > 0 }

    init(client: CInt, clientAddress: [UInt8], maxHeadLength: Int, state: ExchangeState) {
        self.client = client
        self.clientAddress = clientAddress
        self.clientText = PeerAddress.host(of: clientAddress)
        self.parser = HTTPRequestParser(maxHeadLength: maxHeadLength)
        self.state = state
    }

    /// Moves passed-on body bytes into `output`, so that what is written next comes after them.
    func settlePassing() {
        guard self.passing.readableBytes > 0 else { return }
        self.output.writeBuffer(&self.passing)
        self.passing = ByteBuffer()
    }
}
