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
        let view = buffer.readableBytesView
        guard let end = Self.endOfHead(in: view, from: max(0, self.scanned - 3)) else {
            self.scanned = view.count
            if view.count > self.maxHeadLength { throw .headTooLarge(limit: self.maxHeadLength) }
            return nil
        }
        let headLength = end - view.startIndex
        if headLength > self.maxHeadLength { throw .headTooLarge(limit: self.maxHeadLength) }
        self.scanned = 0
        let head = buffer.readSlice(length: headLength + 4)!
        return try self.parseHead(head.readableBytesView.dropLast(4))
    }

    private static func endOfHead(in view: ByteBufferView, from offset: Int) -> Int? {
        var index = view.startIndex + offset
        let last = view.endIndex - 3
        while index < last {
            if view[index] == 13, view[index + 1] == 10, view[index + 2] == 13, view[index + 3] == 10 {
                return index
            }
            index += 1
        }
        return nil
    }

    private func parseHead(_ head: ByteBufferView.SubSequence) throws(Error) -> HTTPRequest {
        var lines = head.split(separator: [13, 10], omittingEmptySubsequences: false).makeIterator()
        guard let requestLine = lines.next() else { throw .malformedRequestLine }
        let parts = requestLine.split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty,
            parts[0].allSatisfy(Self.isTokenByte),
            parts[1].allSatisfy({ $0 > 32 && $0 < 127 })
        else { throw .malformedRequestLine }
        let version = String(decoding: parts[2], as: UTF8.self)
        let minorVersion: Int
        switch version {
        case "HTTP/1.1": minorVersion = 1
        case "HTTP/1.0": minorVersion = 0
        default: throw .unsupportedVersion(String(version.prefix(16)))
        }

        var headers = HTTPHeaders()
        while let line = lines.next() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
                line[line.startIndex..<colon].allSatisfy(Self.isTokenByte),
                line.allSatisfy({ $0 >= 32 || $0 == 9 }) && !line.contains(127)
            else { throw .malformedHeader(String(decoding: line, as: UTF8.self)) }
            if headers.fields.count == self.maxHeaderCount { throw .tooManyHeaders(limit: self.maxHeaderCount) }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self)
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self)
                .trimmingCharacters(in: " \t")
            headers.add(name, value)
        }
        if minorVersion == 1, headers["host"] == nil { throw .missingHost }

        let lengths = Set(headers.values("content-length"))
        let transferEncoding = headers["transfer-encoding"]
        if lengths.count > 1 || (!lengths.isEmpty && transferEncoding != nil) { throw .conflictingBodyLength }
        var hasBody = transferEncoding != nil
        if let length = lengths.first {
            guard let count = UInt64(length) else { throw .malformedHeader("Content-Length: \(length)") }
            hasBody = count > 0
        }
        return HTTPRequest(
            method: String(decoding: parts[0], as: UTF8.self),
            target: String(decoding: parts[1], as: UTF8.self),
            minorVersion: minorVersion,
            headers: headers,
            hasBody: hasBody
        )
    }

    /// RFC 9110 `tchar`.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let scalars = Set(set.unicodeScalars)
        let trimmed = self.unicodeScalars.drop { scalars.contains($0) }.reversed().drop { scalars.contains($0) }
        return String(String.UnicodeScalarView(trimmed.reversed()))
    }
}
