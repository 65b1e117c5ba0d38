import FerryHTTP
import FerryPosix
import NIOCore

/// A connection to a backend, carrying one exchange's request at a time.
///
/// The loop's classes are touched by one thread only: the module is built without the runtime's
/// exclusivity checks (`exclusivityUnchecked` in Package.swift), which cost more than the parsing
/// on this path.
final class Upstream {
    let fd: CInt
    let backend: Int
    var connected: Bool
    /// Taken from the idle pool: a failure before any answer may only mean it timed out there.
    var reused: Bool
    var input = ByteBuffer()
    var output = ByteBuffer()
    var parser: HTTPResponseParser
    /// The answer's status, once its head has gone on to the client.
    var status: Int?
    var body = BodyFraming(.complete)
    var keepAlive = true
    var ready: EdgeReadiness

    /// `ready`: what a pooled connection was last known to allow; a new one may do anything.
    init(fd: CInt, backend: Int, connected: Bool, ready: EdgeReadiness = EdgeReadiness(), maxHeadLength: Int) {
        self.fd = fd
        self.ready = ready
        self.backend = backend
        self.connected = connected
        self.reused = connected
        self.parser = HTTPResponseParser(maxHeadLength: maxHeadLength)
    }

    /// Taken from the idle pool for another request: the connection object is kept with its
    /// socket, one allocation and release fewer a request.
    func reuse() {
        self.reused = true
        self.status = nil
        self.body = BodyFraming(.complete)
        self.keepAlive = true
    }
}

/// One client connection: its buffers, the request in progress, and its ``ExchangeState``.
final class HTTPExchange {
    let client: CInt
    let clientAddress: [UInt8]
    /// The client's address as X-Forwarded-For gives it.
    let clientText: String
    var state: ExchangeState
    var input = ByteBuffer()
    var output = ByteBuffer()
    var parser: HTTPRequestParser
    var clientEnded = false
    var clientReady = EdgeReadiness()
    /// Body bytes passed on straight from the backend connection's buffer (a slice sharing its
    /// storage), written after `output`.
    var passing = ByteBuffer()
    /// False once the connection is closed and the exchange forgotten.
    var isOpen = true

    // The request in progress.
    /// The head as sent to the backend, kept to send again if the request is retried.
    var requestHead = ByteBuffer()
    var requestBody = BodyFraming(.complete)
    var method = ""
    var content = ""
    var outside: Set<Int> = []
    var minorVersion = 1
    var setCookie: String?
    var upstream: Upstream?

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
