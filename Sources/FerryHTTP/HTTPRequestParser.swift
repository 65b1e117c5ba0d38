import CFerryLinux
import NIOCore

/// Reads HTTP/1.x request heads from a byte stream, one at a time, strictly: anything ambiguous —
/// a bare LF, folded headers, conflicting lengths, both Content-Length and Transfer-Encoding — is
/// refused rather than guessed at, since a guess is where request smuggling starts.
public struct HTTPRequestParser: Sendable {
    /// Why a request head was refused. Every case becomes a `400 Bad Request` and a closed connection.
    public enum Error: Swift.Error, Equatable, Sendable, CustomStringConvertible {
        case headTooLarge(limit: Int)
        case malformedRequestLine
        case unsupportedVersion(String)
        case malformedHeader(String)
        case tooManyHeaders(limit: Int)
        case conflictingBodyLength
        case missingHost
        case bareLineFeed

        public var description: String {
            switch self {
            case .headTooLarge(let limit): "request head is larger than \(limit) bytes"
            case .malformedRequestLine: "malformed request line; expected 'METHOD /path HTTP/1.1'"
            case .unsupportedVersion(let version):
                "HTTP version '\(version)' is not supported; use HTTP/1.0 or HTTP/1.1"
            case .malformedHeader(let line): "malformed header line '\(line.prefix(80))'"
            case .tooManyHeaders(let limit): "more than \(limit) header fields"
            case .conflictingBodyLength: "conflicting Content-Length / Transfer-Encoding headers"
            case .missingHost: "HTTP/1.1 request without a Host header"
            case .bareLineFeed: "a line of the head ends in a bare LF; end each line with CRLF"
            }
        }
    }

    public let maxHeadLength: Int
    public let maxHeaderCount: Int
    /// How far the previous call already searched for the end of the head.
    private var scanned = 0

    public init(maxHeadLength: Int = 16 * 1024, maxHeaderCount: Int = 100) {
        self.maxHeadLength = maxHeadLength
        self.maxHeaderCount = maxHeaderCount
    }

    /// Consumes and returns one request head from `buffer`, or returns `nil` and consumes nothing
    /// when the head is not complete yet.
    public mutating func parse(_ buffer: inout ByteBuffer) throws(Error) -> HTTPRequest? {
        guard let head = try self.nextHead(&buffer) else { return nil }
        return try head.withUnsafeReadableBytes { bytes throws(Error) in try Self.parseRequestHead(self, bytes) }
    }

    /// Consumes the next complete head in `buffer` (remembering how far it looked, so a head
    /// that arrives in pieces is searched once) and returns its bytes without the final
    /// CRLF CRLF (a slice of `buffer`'s storage: no copy), or nil when it is not complete yet.
    /// A proxy reads it with ``requestLine(_:)`` and ``scanFields(_:from:_:)``, passing on what it
    /// does not change as it came, without making strings of it.
    public mutating func nextHead(_ buffer: inout ByteBuffer) throws(Error) -> ByteBuffer? {
        let from = max(0, self.scanned - 3)
        let end = buffer.withUnsafeReadableBytes { bytes -> Int? in
            guard bytes.count - from >= 4 else { return nil }
            let found = ferry_find_crlfcrlf(bytes.baseAddress! + from, bytes.count - from)
            return found < 0 ? nil : from + found
        }
        guard let headLength = end else {
            // A head whose lines end in bare LFs never shows CRLF CRLF: refuse it now rather than
            // wait for the client's timeout (the lines of a complete head are checked as parsed).
            if Self.hasBareLineFeed(buffer, from: max(self.scanned, 1)) { throw .bareLineFeed }
            self.scanned = buffer.readableBytes
            if buffer.readableBytes > self.maxHeadLength { throw .headTooLarge(limit: self.maxHeadLength) }
            return nil
        }
        if headLength > self.maxHeadLength { throw .headTooLarge(limit: self.maxHeadLength) }
        self.scanned = 0
        let head = buffer.readSlice(length: headLength)!
        buffer.moveReaderIndex(forwardBy: 4)
        return head
    }

    /// Whether a LF at or after `start` (not the first byte) follows anything but a CR, or the
    /// very first byte is one.
    private static func hasBareLineFeed(_ buffer: ByteBuffer, from start: Int) -> Bool {
        buffer.withUnsafeReadableBytes { bytes in
            if bytes.first == UInt8(ascii: "\n") { return true }
            guard start < bytes.count else { return false }
            for index in start..<bytes.count where bytes[index] == UInt8(ascii: "\n") {
                if bytes[index - 1] != UInt8(ascii: "\r") { return true }
            }
            return false
        }
    }

    /// A request line's parts, as ranges of the head's bytes.
    public struct RequestLine: Sendable {
        public var method: Range<Int>
        public var target: Range<Int>
        public var minorVersion: Int
        /// Where the header fields start.
        public var fieldsStart: Int
    }

    /// One header field, as ranges of the head's bytes.
    public struct Field: Sendable {
        public var name: Range<Int>
        public var value: Range<Int>
        /// The whole line, without its CRLF.
        public var line: Range<Int>
    }

    /// Parses the head without its final CRLF CRLF, over raw bytes: this runs once per request.
    private static func parseRequestHead(_ parser: Self, _ head: UnsafeRawBufferPointer) throws(Error) -> HTTPRequest {
        let line = try Self.requestLine(head)
        let headers = try parser.parseFields(head, from: line.fieldsStart)
        if line.minorVersion == 1, headers["host"] == nil { throw .missingHost }
        return HTTPRequest(
            method: Self.text(head, line.method),
            target: Self.text(head, line.target),
            minorVersion: line.minorVersion,
            headers: headers,
            hasBody: try Self.announcesBody(headers)
        )
    }

    /// The request line, `METHOD SP target SP HTTP/1.x`, checked strictly.
    public static func requestLine(_ head: UnsafeRawBufferPointer) throws(Error) -> RequestLine {
        let requestLineEnd = try Self.lineEnd(head, from: 0)
        var firstSpace = 0
        while firstSpace < requestLineEnd, head[firstSpace] != 32 { firstSpace += 1 }
        var secondSpace = firstSpace + 1
        while secondSpace < requestLineEnd, head[secondSpace] != 32 { secondSpace += 1 }
        guard firstSpace > 0, secondSpace < requestLineEnd, secondSpace > firstSpace + 1,
            (0..<firstSpace).allSatisfy({ Self.isTokenByte(head[$0]) }),
            (firstSpace + 1..<secondSpace).allSatisfy({ head[$0] > 32 && head[$0] < 127 })
        else { throw .malformedRequestLine }
        let version = UnsafeRawBufferPointer(rebasing: head[secondSpace + 1..<requestLineEnd])
        guard version.count == 8, Self.startsWithHTTP1(version), version[7] == 48 || version[7] == 49 else {
            throw .unsupportedVersion(String(Self.text(head, secondSpace + 1..<requestLineEnd).prefix(16)))
        }
        return RequestLine(
            method: 0..<firstSpace,
            target: firstSpace + 1..<secondSpace,
            minorVersion: Int(version[7] - 48),
            fieldsStart: requestLineEnd + 2
        )
    }

    /// Whether the fields announce a body; throws when Content-Length and Transfer-Encoding
    /// disagree or a length is not a number.
    static func announcesBody(_ headers: HTTPHeaders) throws(Error) -> Bool {
        let lengths = headers.values("content-length")
        let transferEncoding = headers["transfer-encoding"]
        if Set(lengths).count > 1 || (!lengths.isEmpty && transferEncoding != nil) { throw .conflictingBodyLength }
        if let length = lengths.first {
            guard let count = UInt64(length) else { throw .malformedHeader("Content-Length: \(length)") }
            return count > 0
        }
        return transferEncoding != nil
    }

    /// The end of the line starting at `start` (the index of its CR); a bare CR or LF throws.
    static func lineEnd(_ head: UnsafeRawBufferPointer, from start: Int) throws(Error) -> Int {
        var index = start
        while index < head.count {
            switch head[index] {
            case 13:
                guard index + 1 < head.count, head[index + 1] == 10 else {
                    throw .malformedHeader(Self.text(head, start..<min(index + 1, head.count)))
                }
                return index
            case 10:
                throw start == 0 ? .malformedRequestLine : .malformedHeader(Self.text(head, start..<index))
            default:
                index += 1
            }
        }
        return head.count
    }

    /// The header fields from `start` to the end of the head, as strings.
    func parseFields(_ head: UnsafeRawBufferPointer, from start: Int) throws(Error) -> HTTPHeaders {
        var headers = HTTPHeaders()
        try self.scanFields(head, from: start) { field in
            headers.add(Self.text(head, field.name), Self.text(head, field.value))
        }
        return headers
    }

    /// Visits the header fields from `start` to the end of the head, checked strictly: a name is
    /// a token, a value has no control characters, and there are at most `maxHeaderCount`. One
    /// pass over each line: its name up to the colon, its value up to the CRLF.
    public func scanFields(
        _ head: UnsafeRawBufferPointer,
        from start: Int,
        _ visit: (Field) -> Void
    ) throws(Error) {
        // Through a pointer, with the end fixed: indexing the buffer itself re-checks its base
        // for nil at every byte, doubling the loops below.
        guard start < head.count, let base = head.baseAddress else { return }
        let end = head.count
        func byte(_ index: Int) -> UInt8 { base.load(fromByteOffset: index, as: UInt8.self) }
        var count = 0
        var lineStart = start
        while lineStart < end {
            var colon = lineStart
            while colon < end, Self.isTokenByte(byte(colon)) { colon &+= 1 }
            guard colon > lineStart, colon < end, byte(colon) == UInt8(ascii: ":") else {
                throw Self.malformedLine(head, from: lineStart)
            }
            var lineEnd = colon &+ 1
            while lineEnd < end, Self.isValueByte(byte(lineEnd)) { lineEnd &+= 1 }
            // The line ends at a CRLF, or at the end of the head (whose CRLF CRLF is taken off).
            guard lineEnd == end || (byte(lineEnd) == 13 && lineEnd + 1 < end && byte(lineEnd + 1) == 10) else {
                throw Self.malformedLine(head, from: lineStart)
            }
            if count == self.maxHeaderCount { throw .tooManyHeaders(limit: self.maxHeaderCount) }
            count += 1
            var valueStart = colon + 1
            var valueEnd = lineEnd
            while valueStart < valueEnd, byte(valueStart) == 32 || byte(valueStart) == 9 { valueStart += 1 }
            while valueEnd > valueStart, byte(valueEnd - 1) == 32 || byte(valueEnd - 1) == 9 { valueEnd -= 1 }
            visit(Field(name: lineStart..<colon, value: valueStart..<valueEnd, line: lineStart..<lineEnd))
            lineStart = lineEnd + 2
        }
    }

    /// The refusal of the field line at `start`, quoting it up to its first CR or LF.
    private static func malformedLine(_ head: UnsafeRawBufferPointer, from start: Int) -> Error {
        var end = start
        while end < head.count, head[end] != 13, head[end] != 10 { end += 1 }
        return .malformedHeader(Self.text(head, start..<end))
    }

    public static func text(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// RFC 9110 `tchar`: a bit for each of the 128 ASCII bytes (`!#$%&'*+-.^_`|~`, digits and
    /// letters), so a name is checked a byte at a time without a search.
    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        let below64: UInt64 = 0x03ff_6cfa_0000_0000
        let from64: UInt64 = 0x57ff_ffff_c7ff_fffe
        if byte < 64 { return below64 >> byte & 1 == 1 }
        return byte < 128 && from64 >> (byte - 64) & 1 == 1
    }

    /// Whether `bytes` start with `HTTP/1.`, the fixed part of a version (compared directly: a
    /// generic `starts(with:)` costs more than the rest of the line).
    static func startsWithHTTP1(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 7 && bytes[0] == UInt8(ascii: "H") && bytes[1] == UInt8(ascii: "T")
            && bytes[2] == UInt8(ascii: "T") && bytes[3] == UInt8(ascii: "P") && bytes[4] == UInt8(ascii: "/")
            && bytes[5] == UInt8(ascii: "1") && bytes[6] == UInt8(ascii: ".")
    }

    /// A byte a field value may hold: visible ASCII, space, tab, and anything from 0x80 up.
    @inline(__always)
    static func isValueByte(_ byte: UInt8) -> Bool {
        (byte >= 32 && byte != 127) || byte == 9
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let scalars = Set(set.unicodeScalars)
        let trimmed = self.unicodeScalars.drop { scalars.contains($0) }.reversed().drop { scalars.contains($0) }
        return String(String.UnicodeScalarView(trimmed.reversed()))
    }
}
