import NIOCore

/// Reads HTTP/1.x response heads from a byte stream with the same strictness as
/// ``HTTPRequestParser``: a server that answers something ambiguous is treated as broken.
public struct HTTPResponseParser: Sendable {
    private var heads: HTTPRequestParser

    public init(maxHeadLength: Int = 16 * 1024, maxHeaderCount: Int = 100) {
        self.heads = HTTPRequestParser(maxHeadLength: maxHeadLength, maxHeaderCount: maxHeaderCount)
    }

    /// A status line's parts.
    public struct StatusLine: Sendable {
        public var minorVersion: Int
        public var status: Int
        public var reason: Range<Int>
        /// Where the header fields start.
        public var fieldsStart: Int
    }

    /// Consumes the next complete response head and returns its bytes, as
    /// ``HTTPRequestParser/nextHead(_:)`` does for requests.
    public mutating func nextHead(_ buffer: inout ByteBuffer) throws(HTTPRequestParser.Error) -> ByteBuffer? {
        try self.heads.nextHead(&buffer)
    }

    /// The rules the head's fields are checked by.
    public var fieldRules: HTTPRequestParser { self.heads }

    /// The status line, `HTTP/1.x SP 3DIGIT SP reason`, checked strictly.
    public static func statusLine(_ head: UnsafeRawBufferPointer) throws(HTTPRequestParser.Error) -> StatusLine {
        let lineEnd = try HTTPRequestParser.lineEnd(head, from: 0)
        let line = UnsafeRawBufferPointer(rebasing: head[..<lineEnd])
        guard line.count >= 12, HTTPRequestParser.startsWithHTTP1(line), line[8] == 32,
            line[7] == UInt8(ascii: "0") || line[7] == UInt8(ascii: "1"),
            line[9...11].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            line.count == 12 || line[12] == 32,
            // The reason phrase is passed on to clients: no control bytes in it, as in a value.
            line.dropFirst(12).allSatisfy(HTTPRequestParser.isValueByte)
        else { throw .malformedHeader(String(decoding: line.prefix(80), as: UTF8.self)) }
        let status = Int(line[9] - 48) * 100 + Int(line[10] - 48) * 10 + Int(line[11] - 48)
        return StatusLine(
            minorVersion: Int(line[7] - UInt8(ascii: "0")),
            status: status,
            reason: min(13, lineEnd)..<lineEnd,
            fieldsStart: lineEnd + 2
        )
    }
}
