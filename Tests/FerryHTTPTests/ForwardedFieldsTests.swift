import NIOCore
import Testing

@testable import FerryHTTP

/// What a proxy passes on of a head, read in one pass and written in one reservation.
@Suite struct ForwardedFieldsTests {
    /// The head without its final CRLF CRLF, as `nextHead` gives it, and its fields.
    private func fields(_ head: String) throws -> (bytes: [UInt8], fields: ForwardedFields) {
        let bytes = Array(head.utf8)
        let start = bytes.firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? bytes.count
        let fields = try bytes.withUnsafeBytes { raw throws(HTTPRequestParser.Error) in
            try ForwardedFields(raw, from: start, parser: HTTPRequestParser())
        }
        return (bytes, fields)
    }

    private func passedOn(_ head: String, exceptForwardedFor: Bool = false) throws -> String {
        let (bytes, fields) = try self.fields(head)
        var out = ByteBuffer()
        bytes.withUnsafeBytes { raw in
            out.writeHead(capacity: raw.count + 2) { writer in
                fields.writePassedOn(raw, to: &writer, exceptForwardedFor: exceptForwardedFor)
            }
        }
        return String(buffer: out)
    }

    @Test func everyFieldButTheHopByHopOnesPassesOnAsItCame() throws {
        let head =
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nAccept: */*\r\n"
            + "Keep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nuser-agent:  curl  \r\nX-Last: yes"
        #expect(try self.passedOn(head) == "Host: h\r\nAccept: */*\r\nuser-agent:  curl  \r\nX-Last: yes\r\n")
        #expect(try self.passedOn("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2") == "A: 1\r\nB: 2\r\n", "one run, to the end")
        #expect(try self.passedOn("HTTP/1.1 204 No Content") == "")
    }

    @Test func theConnectionFieldIsReadTokenByToken() throws {
        let (_, fields) = try self.fields(
            "GET / HTTP/1.1\r\nConnection: Close ,, X-Secret,keep-alive ,\r\nConnection: te"
        )
        #expect(fields.connectionClose)
        #expect(fields.connectionKeepAlive)
        #expect(fields.connection == ["x-secret", "te"])
        #expect(!fields.keepAlive(minorVersion: 1))
    }

    @Test func earlierForwardedForValuesAreJoinedAndLeftForTheCallerToExtend() throws {
        let head = "GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\nHost: h\r\nx-forwarded-for: 10.0.0.2"
        let (_, fields) = try self.fields(head)
        #expect(fields.forwardedFor == "10.0.0.1, 10.0.0.2")
        #expect(try self.passedOn(head, exceptForwardedFor: true) == "Host: h\r\n")
    }

    /// A message that names its own framing in Connection keeps it on the way: stripped, its body
    /// would reach the backend unframed and be read there as a request of its own (smuggling).
    @Test func connectionCannotStripTheFieldsTheMessageIsFramedAndRoutedBy() throws {
        let head =
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 33\r\n"
            + "Connection: content-length, Transfer-Encoding, HOST, X-A\r\nX-A: 1"
        let (_, fields) = try self.fields(head)
        #expect(fields.connection == ["x-a"])
        #expect(fields.contentLength == 33)
        #expect(try self.passedOn(head) == "Host: h\r\nContent-Length: 33\r\n")
    }

    /// Case is folded for A to Z only: `_` and `^` are name bytes too, and `| 0x20` turns them
    /// into DEL and `~`.
    @Test func namesWithUnderscoresAndCaretsMatchOnlyThemselves() throws {
        for (name, rule, expected) in [("X_Tenant", "x_tenant", true), ("x^a", "x~a", false), ("X-A", "x-a", true)] {
            let matched = Array(name.utf8).withUnsafeBytes { ForwardedFields.matches($0, lowercased: rule) }
            #expect(matched == expected, "\(name) against \(rule)")
        }
        let head = "GET / HTTP/1.1\r\nX_Tenant: blue\r\nConnection: X_Secret\r\nX_Secret: 1\r\nHost: h"
        let (bytes, fields) = try self.fields(head)
        #expect(bytes.withUnsafeBytes { fields.values("x_tenant", in: $0) } == ["blue"])
        #expect(try self.passedOn(head) == "X_Tenant: blue\r\nHost: h\r\n")
    }

    /// The reason phrase goes on to clients as it came, so it is held to a value's bytes.
    @Test func aReasonPhraseWithAControlByteIsRefused() throws {
        func statusLine(_ text: String) throws -> HTTPResponseParser.StatusLine {
            try Array(text.utf8).withUnsafeBytes { try HTTPResponseParser.statusLine($0) }
        }
        #expect(try statusLine("HTTP/1.1 200 OK, fine\r\nA: 1").status == 200)
        #expect(try statusLine("HTTP/1.1 204").status == 204)
        #expect(throws: HTTPRequestParser.Error.self) { try statusLine("HTTP/1.1 200 O\u{1b}[2JK\r\nA: 1") }
        #expect(throws: HTTPRequestParser.Error.self) { try statusLine("HTTP/1.1 200 OK\u{0}") }
    }

    /// The name check is a bitmap of RFC 9110's `tchar`: every byte value is checked against the
    /// grammar's own list.
    @Test func aFieldNameIsExactlyTheTokenBytes() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        for byte in UInt8.min...UInt8.max {
            #expect(HTTPRequestParser.isTokenByte(byte) == tchar.contains(byte), "byte \(byte)")
        }
    }

    /// A control byte anywhere in a value is refused, a tab or a byte from 0x80 up is not.
    @Test func aValueHoldsNoControlByteWhereverItFalls() {
        for position in 0..<20 {
            for byte in UInt8.min...UInt8.max {
                var head = Array("GET / HTTP/1.1\r\nX-Long: ".utf8) + Array(repeating: UInt8(ascii: "v"), count: 20)
                head[head.count - 20 + position] = byte
                head += Array("\r\nHost: h".utf8)
                let allowed = (byte >= 32 && byte != 127) || byte == 9
                let parsed = head.withUnsafeBytes { raw in
                    try? ForwardedFields(raw, from: 16, parser: HTTPRequestParser())
                }
                #expect((parsed != nil) == allowed, "byte \(byte) at \(position)")
            }
        }
    }

    @Test func headWriterFillsWhatItReservedAndNoMore() {
        var out = ByteBuffer(string: "before|")
        out.writeHead(capacity: 12) { writer in
            writer.write("GET ")
            writer.write(string: "/é")
            writer.write(UnsafeRawBufferPointer(start: nil, count: 0))
            writer.write("\r\n")
        }
        #expect(String(buffer: out) == "before|GET /é\r\n")
    }
}
