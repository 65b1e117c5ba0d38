import FerryHTTP
import NIOCore

/// What the switch takes from a request head: enough to route it, frame its body and send it on,
/// with the head as the backend gets it already written.
struct RequestStart {
    var method: String
    /// The target's path, without the query: the content LARD goes by.
    var path: String
    var minorVersion: Int
    var fields: ForwardedFields
    var outside: Set<Int>
    var sticky: Int?
    var head: ByteBuffer

    /// Whether a request with this method may be sent again after a backend failed it.
    static func isRepeatable(_ method: String) -> Bool {
        switch method {
        case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE": true
        default: false
        }
    }

    /// Reads a request head from its raw bytes: the request line and fields are checked, and the
    /// head for the backend is written (fields passed on as they came, hop-by-hop ones dropped,
    /// the client's address added to X-Forwarded-For).
    init(
        _ raw: UnsafeRawBufferPointer,
        parser: HTTPRequestParser,
        plan: RoutingPlan,
        client: String
    ) throws(HTTPRequestParser.Error) {
        let line = try HTTPRequestParser.requestLine(raw)
        let fields = try ForwardedFields(raw, from: line.fieldsStart, parser: parser)
        if line.minorVersion == 1, !fields.hasHost { throw .missingHost }
        let target = UnsafeRawBufferPointer(rebasing: raw[line.target])
        let pathEnd = target.firstIndex(of: UInt8(ascii: "?")) ?? target.count
        let path = HTTPRequestParser.text(raw, line.target.lowerBound..<line.target.lowerBound + pathEnd)
        self.outside =
            plan.routes.isEmpty
            ? plan.outsideDefault
            : plan.outside(host: fields.host(in: raw), path: path[...]) { fields.values($0, in: raw) }
        self.sticky = plan.options.stickyCookie == nil ? nil : plan.stickyBackend(fields.values("cookie", in: raw))

        // The request line keeps its length (the version becomes HTTP/1.1), the fields passed on
        // take at most the rest of the head and its last CRLF, and X-Forwarded-For grows by the
        // client's address: the rest is what the lines below add.
        let capacity = raw.count + client.utf8.count + (fields.forwardedFor?.utf8.count ?? 0) + 96
        var head = ByteBuffer()
        head.writeHead(capacity: capacity) { head in
            head.write(UnsafeRawBufferPointer(rebasing: raw[line.method]))
            head.write(" ")
            head.write(target)
            head.write(" HTTP/1.1\r\n")
            fields.writePassedOn(raw, to: &head, exceptForwardedFor: true)
            // Passed on as HTTP/1.1, an HTTP/1.0 request without Host gets the empty one RFC 9112
            // (3.2) asks for a target without an authority; backends refuse 1.1 without any.
            if !fields.hasHost { head.write("Host: \r\n") }
            if fields.acceptsTrailers { head.write("TE: trailers\r\nConnection: TE\r\n") }
            head.write("X-Forwarded-For: ")
            if let earlier = fields.forwardedFor {
                head.write(string: earlier)
                head.write(", ")
            }
            head.write(string: client)
            head.write("\r\n\r\n")
        }
        self.method = HTTPRequestParser.text(raw, line.method)
        self.path = path
        self.minorVersion = line.minorVersion
        self.fields = fields
        self.head = head
    }

    /// Where the request's body ends, or why the request is refused (400): anything a smuggler
    /// could use — two Content-Lengths, Content-Length with Transfer-Encoding, a coding that does
    /// not end in chunked — is refused.
    func bodyFraming() -> Result<BodyFraming, RequestRefusal> {
        let fields = self.fields
        if fields.contentLengthCount > 1 { return .failure(RequestRefusal("more than one Content-Length header")) }
        if !fields.contentLengthIsNumber { return .failure(RequestRefusal("Content-Length is not a number")) }
        if !fields.transferEncoding.isEmpty {
            guard fields.contentLengthCount == 0 else {
                return .failure(RequestRefusal("\(HTTPRequestParser.Error.conflictingBodyLength)"))
            }
            guard fields.endsChunked, self.minorVersion == 1 else {
                return .failure(
                    RequestRefusal(
                        "Transfer-Encoding must end in chunked (HTTP/1.1), got '\(fields.transferEncoding.joined(separator: ", "))'"
                    )
                )
            }
            return .success(.chunked())
        }
        if let length = fields.contentLength, length > 0 { return .success(BodyFraming(.length(remaining: length))) }
        return .success(BodyFraming(.complete))
    }
}

/// Why a request head is answered 400.
struct RequestRefusal: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// What the switch takes from an answer's head. The head itself stays where it was read until
/// ``writeHead(_:to:setCookie:close:keepAlive:)`` writes the client's version of it.
struct ResponseStart {
    var status: Int
    var minorVersion: Int
    var fields: ForwardedFields
    /// The reason phrase, as a range of the head's bytes.
    var reason: Range<Int>

    /// Reads an answer's head from its raw bytes.
    init(_ raw: UnsafeRawBufferPointer, parser: HTTPRequestParser) throws(HTTPRequestParser.Error) {
        let line = try HTTPResponseParser.statusLine(raw)
        let fields = try ForwardedFields(raw, from: line.fieldsStart, parser: parser)
        if fields.contentLengthCount > 1 || (fields.contentLengthCount > 0 && !fields.transferEncoding.isEmpty)
            || !fields.contentLengthIsNumber
        {
            throw .conflictingBodyLength
        }
        self.status = line.status
        self.minorVersion = line.minorVersion
        self.fields = fields
        self.reason = line.reason
    }

    /// Writes the head the client gets onto `out`, straight from the backend's (`raw`): the
    /// status line as HTTP/1.1, the fields passed on (none for a 1xx), then what this hop adds —
    /// a sticky cookie, and the Connection field the client's own request calls for.
    func writeHead(
        _ raw: UnsafeRawBufferPointer,
        to out: inout ByteBuffer,
        setCookie: (name: String, token: String)? = nil,
        close: Bool = false,
        keepAlive: Bool = false
    ) {
        // The status line grows by at most 3 bytes (one without a reason gains its space and CRLF)
        // and the fields take at most the rest of the head and its last CRLF; the additions below
        // fit in the 64 bytes with those 3, and the cookie's share.
        let cookie = setCookie.map { $0.name.utf8.count + $0.token.utf8.count + 40 } ?? 0
        out.writeHead(capacity: raw.count + 64 + cookie) { head in
            head.write("HTTP/1.1 ")
            head.write(UnsafeRawBufferPointer(rebasing: raw[9..<12]))  // the status code
            head.write(" ")
            head.write(UnsafeRawBufferPointer(rebasing: raw[self.reason]))
            head.write("\r\n")
            if self.status >= 200 { self.fields.writePassedOn(raw, to: &head, exceptForwardedFor: false) }
            if let setCookie {
                head.write("Set-Cookie: ")
                head.write(string: setCookie.name)
                head.write("=")
                head.write(string: setCookie.token)
                head.write("; Path=/; HttpOnly\r\n")
            }
            if close {
                head.write("Connection: close\r\n")
            } else if keepAlive {
                head.write("Connection: keep-alive\r\n")
            }
            head.write("\r\n")
        }
    }

    /// Where the answer's body ends: nothing for HEAD, 204 and 304, else by its framing, or at
    /// the backend's close when it gives none.
    func bodyFraming(method: String) -> BodyFraming {
        if method == "HEAD" || self.status == 204 || self.status == 304 { return BodyFraming(.complete) }
        if !self.fields.transferEncoding.isEmpty { return .chunked() }
        if let length = self.fields.contentLength {
            return BodyFraming(length == 0 ? .complete : .length(remaining: length))
        }
        return BodyFraming(.untilClose)
    }
}
