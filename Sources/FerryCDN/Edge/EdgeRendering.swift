import FerryHTTP
import NIOCore
import NIOHTTP1

/// An answer as bytes: a head whose last line is still to come (``finishHead(keepAlive:)``) and
/// a body that shares the kept object's storage.
struct EdgeRendering {
    var head: ByteBuffer
    var body: ByteBuffer?

    mutating func finishHead(keepAlive: Bool) {
        if !keepAlive { self.head.writeStaticString("Connection: close\r\n") }
        self.head.writeStaticString("\r\n")
    }

    /// A kept object: whole, a range of it (206, or 416 when the range is outside it), or 304 when
    /// the client's validator still holds.
    static func cached(
        _ entry: EdgeEntry,
        label: String,
        request: HTTPRequestHead,
        now: Double,
        allocator: ByteBufferAllocator
    ) -> EdgeRendering {
        var head = allocator.buffer(capacity: entry.statusLine.readableBytes + entry.renderedFields.readableBytes + 96)
        let size = entry.body.readableBytes
        var body: ByteBuffer? = entry.body
        if entry.status == 200, Self.validatorHolds(entry, request.headers) {
            head.writeStaticString("HTTP/1.1 304 Not Modified\r\n")
            head.writeImmutableBuffer(entry.renderedFields)
            body = nil
        } else if entry.status == 200, request.method == .GET, let range = Self.range(entry, request.headers) {
            switch range {
            case .range(let bytes):
                head.writeStaticString("HTTP/1.1 206 Partial Content\r\n")
                head.writeImmutableBuffer(entry.renderedFields)
                head.writeString("Content-Range: bytes \(bytes.lowerBound)-\(bytes.upperBound - 1)/\(size)\r\n")
                body = entry.body.getSlice(at: entry.body.readerIndex + bytes.lowerBound, length: bytes.count)
            default:
                head.writeStaticString("HTTP/1.1 416 Range Not Satisfiable\r\n")
                head.writeImmutableBuffer(entry.renderedFields)
                head.writeString("Content-Range: bytes */\(size)\r\n")
                body = ByteBuffer()
            }
        } else {
            head.writeImmutableBuffer(entry.statusLine)
            head.writeImmutableBuffer(entry.renderedFields)
            if entry.status == 200 { head.writeStaticString("Accept-Ranges: bytes\r\n") }
        }
        if let body, entry.mayHaveBody {
            head.writeString("Content-Length: \(body.readableBytes)\r\n")
        }
        head.writeString("Age: \(entry.ageSeconds(now: now))\r\nX-Cache: \(label)\r\n")
        return EdgeRendering(head: head, body: entry.mayHaveBody ? body : nil)
    }

    /// An origin answer that is not kept, relayed as it came (without hop-by-hop fields).
    static func relayed(
        _ response: OriginResponse,
        request: HTTPRequestHead,
        allocator: ByteBufferAllocator
    ) -> EdgeRendering {
        var head = allocator.buffer(capacity: 512)
        head.writeString("HTTP/1.1 \(response.status.code) \(response.status.reasonPhrase)\r\n")
        head.writeFields(response.headers)
        let hasBody = EdgeEntry.mayHaveBody(status: Int(response.status.code))
        if hasBody { head.writeString("Content-Length: \(response.body.readableBytes)\r\n") }
        head.writeStaticString("X-Cache: MISS\r\n")
        return EdgeRendering(head: head, body: hasBody ? response.body : nil)
    }

    /// The edge's own answer when it has none from the origin or the cache.
    static func error(_ status: HTTPResponseStatus, _ reason: String, allocator: ByteBufferAllocator) -> EdgeRendering {
        var body = allocator.buffer(capacity: reason.utf8.count + 1)
        body.writeString(reason)
        body.writeStaticString("\n")
        return Self.plain(status, body: body, type: "text/plain; charset=utf-8", allocator: allocator)
    }

    static func plain(
        _ status: HTTPResponseStatus,
        body: ByteBuffer,
        type: String,
        allocator: ByteBufferAllocator
    ) -> EdgeRendering {
        var head = allocator.buffer(capacity: 256)
        head.writeString("HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\n")
        head.writeString("Date: \(HTTPDate.now())\r\nServer: ferry-edge\r\nContent-Type: \(type)\r\n")
        head.writeString("Cache-Control: no-store\r\nContent-Length: \(body.readableBytes)\r\n")
        return EdgeRendering(head: head, body: body)
    }

    /// If-None-Match (weak comparison), or else If-Modified-Since, against the kept object.
    private static func validatorHolds(_ entry: EdgeEntry, _ headers: NIOHTTP1.HTTPHeaders) -> Bool {
        let tags = headers["if-none-match"]
        if !tags.isEmpty {
            guard let etag = entry.etag else { return false }
            return tags.flatMap { $0.split(separator: ",") }.contains { candidate in
                let tag = candidate.trimmingSpaces()
                return tag == "*" || Self.weak(tag) == Self.weak(Substring(etag))
            }
        }
        guard let since = headers["if-modified-since"].first.flatMap(HTTPDateParsing.parse),
            let modified = entry.lastModified.flatMap(HTTPDateParsing.parse)
        else { return false }
        return modified <= since
    }

    private static func weak(_ tag: Substring) -> Substring { tag.hasPrefix("W/") ? tag.dropFirst(2) : tag }

    /// The client's single range, unless If-Range names another version.
    private static func range(_ entry: EdgeEntry, _ headers: NIOHTTP1.HTTPHeaders) -> ByteRange? {
        guard let header = headers["range"].first else { return nil }
        if let ifRange = headers["if-range"].first, ifRange != entry.etag { return nil }
        let range = ByteRange.parse(header, size: entry.body.readableBytes)
        return range == .none ? nil : range
    }
}

extension ByteBuffer {
    /// Writes `Name: value` lines, leaving out hop-by-hop fields and those the edge writes anew.
    mutating func writeFields(_ headers: NIOHTTP1.HTTPHeaders) {
        let hopByHop = HeaderFields.hopByHop(in: headers)
        for (name, value) in headers {
            let lowered = HeaderFields.lowercased(name)
            guard !hopByHop.contains(lowered), !CachedObject.computedFields.contains(lowered), lowered != "x-cache"
            else { continue }
            self.writeString(name)
            self.writeStaticString(": ")
            self.writeString(value)
            self.writeStaticString("\r\n")
        }
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var text = self
        while text.first == " " || text.first == "\t" { text = text.dropFirst() }
        while text.last == " " || text.last == "\t" { text = text.dropLast() }
        return text
    }
}
