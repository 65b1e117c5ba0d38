import NIOCore

/// One parsed HTTP/1.x response head, as a proxy reads it from an upstream server.
public struct HTTPResponseStatusHead: Sendable, Equatable {
    public var minorVersion: Int
    public var status: Int
    public var reason: String
    public var headers: HTTPHeaders
}

/// Reads HTTP/1.x response heads from a byte stream with the same strictness as
/// ``HTTPRequestParser``: a server that answers something ambiguous is treated as broken.
public struct HTTPResponseParser: Sendable {
    private var heads: HTTPRequestParser

    public init(maxHeadLength: Int = 16 * 1024, maxHeaderCount: Int = 100) {
        self.heads = HTTPRequestParser(maxHeadLength: maxHeadLength, maxHeaderCount: maxHeaderCount)
    }

    /// Consumes and returns one response head from `buffer`, or nil when it is not complete yet.
    public mutating func parse(_ buffer: inout ByteBuffer) throws(HTTPRequestParser.Error) -> HTTPResponseStatusHead? {
        try self.heads.parseHead(&buffer) { parser, head throws(HTTPRequestParser.Error) in
            // Status line: HTTP/1.x SP 3DIGIT SP reason.
            let lineEnd = try HTTPRequestParser.lineEnd(head, from: 0)
            let line = Array(UnsafeRawBufferPointer(rebasing: head[..<lineEnd]))
            guard line.count >= 12, line.starts(with: Array("HTTP/1.".utf8)), line[8] == 32,
                line[7] == UInt8(ascii: "0") || line[7] == UInt8(ascii: "1"),
                line[9...11].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                line.count == 12 || line[12] == 32
            else { throw .malformedHeader(String(decoding: line.prefix(80), as: UTF8.self)) }
            let headers = try parser.parseFields(head, from: lineEnd + 2)
            _ = try HTTPRequestParser.announcesBody(headers)
            return HTTPResponseStatusHead(
                minorVersion: Int(line[7] - UInt8(ascii: "0")),
                status: Int(String(decoding: line[9...11], as: UTF8.self))!,
                reason: line.count > 13 ? String(decoding: line[13...], as: UTF8.self) : "",
                headers: headers
            )
        }
    }
}
