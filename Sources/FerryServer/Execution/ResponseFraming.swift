import FerryHTTP
import NIOCore

/// How a response is framed on the wire, decided once per response the same way by every
/// execution model: the headers every response carries, and whether the body goes as one
/// Content-Length run or as chunks that a cancel can end early without closing the connection.
struct ResponseFraming {
    /// Chunk size of cancellable bodies: a cancel lands within one chunk.
    static let chunkSize = 64 * 1024
    /// A body from memory up to this size is copied behind the head, to leave in one write; a
    /// larger one follows it in a second write rather than being copied.
    static let copiedBody = 16 * 1024

    /// The body goes chunked, ending in a `Ferry-Transfer` trailer.
    let chunked: Bool
    /// The connection stays open after this response (if it is not cut short).
    let keepAlive: Bool
    /// The response carries a body on the wire (not for HEAD or 304).
    let sendsBody: Bool

    /// Adds the framing headers to `head`.
    init(
        head: inout HTTPResponseHead,
        body: FileResponse.Body,
        request: HTTPRequest?,
        connectionID: UInt64,
        requestID: UInt64,
        keepAlive: Bool
    ) {
        let isHead = request?.method == "HEAD"
        let hasFileBody: Bool
        if case .file = body { hasFileBody = true } else { hasFileBody = false }
        self.sendsBody = !isHead && head.status.code != 304
        self.chunked = self.sendsBody && hasFileBody && (request?.acceptsTrailers ?? false)
        self.keepAlive = keepAlive
        head.headers.add("Date", HTTPDate.now())
        head.headers.add("Server", "ferry")
        head.headers.add("Ferry-Connection-Id", String(connectionID))
        head.headers.add("Ferry-Request-Id", String(requestID))
        if self.chunked {
            head.headers.add("Transfer-Encoding", "chunked")
            head.headers.add("Trailer", "Ferry-Transfer")
        } else if head.status.code != 304 {
            head.headers.add("Content-Length", String(body.length))
        }
        if !keepAlive {
            head.headers.add("Connection", "close")
        } else if request?.minorVersion == 0 {
            head.headers.add("Connection", "keep-alive")
        }
    }

    /// The size line that starts a chunk.
    static func chunkHeader(_ length: Int) -> ByteBuffer {
        ByteBuffer(string: String(length, radix: 16) + "\r\n")
    }

    /// What ends a chunk's data.
    static let chunkEnd = ByteBuffer(string: "\r\n")

    /// The last chunk and its trailer; `complete` is false when a cancel cut the body short.
    static func lastChunk(complete: Bool) -> ByteBuffer {
        ByteBuffer(string: "0\r\nFerry-Transfer: \(complete ? "complete" : "cancelled")\r\n\r\n")
    }
}
