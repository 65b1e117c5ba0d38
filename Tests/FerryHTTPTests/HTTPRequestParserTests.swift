import FerryHTTP
import NIOCore
import Testing

@Suite struct HTTPRequestParserTests {
    private func parse(_ text: String) throws(HTTPRequestParser.Error) -> HTTPRequest? {
        var parser = HTTPRequestParser(maxHeadLength: 256)
        var buffer = ByteBuffer(string: text)
        return try parser.parse(&buffer)
    }

    @Test func parsesARequestHead() throws {
        let request = try #require(
            try self.parse("GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nX-Thing:  spaced value \r\n\r\n")
        )
        #expect(request.method == "GET")
        #expect(request.target == "/a/b?x=1")
        #expect(request.headers["x-thing"] == "spaced value")
        #expect(request.keepAlive)
        #expect(!request.hasBody)
    }

    @Test func waitsForTheWholeHeadThenTakesPipelinedRequestsOneByOne() throws {
        var parser = HTTPRequestParser()
        var buffer = ByteBuffer(string: "GET /1 HTTP/1.1\r\nHost: h\r")
        #expect(try parser.parse(&buffer) == nil)
        buffer.writeString("\n\r\nHEAD /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.0\r\n\r\n")
        #expect(try parser.parse(&buffer)?.target == "/1")
        #expect(try parser.parse(&buffer)?.method == "HEAD")
        let last = try #require(try parser.parse(&buffer))
        #expect(last.target == "/3")
        #expect(!last.keepAlive, "HTTP/1.0 closes unless asked to keep alive")
        #expect(buffer.readableBytes == 0)
    }

    @Test(arguments: [
        ("GET /\r\n\r\n", HTTPRequestParser.Error.malformedRequestLine),
        ("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", .malformedRequestLine),
        ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", .unsupportedVersion("HTTP/2.0")),
        ("GET / HTTP/1.1\r\n\r\n", .missingHost),
        ("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", .malformedHeader(" folded")),
        ("GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n", .malformedHeader("Bad Name: x")),
        // Request smuggling: both framings, or two different lengths.
        (
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            .conflictingBodyLength
        ),
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", .conflictingBodyLength),
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", .malformedHeader("Content-Length: -1")),
    ])
    func refusesMalformedHeads(text: String, expected: HTTPRequestParser.Error) {
        #expect(throws: expected) { try self.parse(text) }
    }

    @Test func refusesBareLineFeeds() {
        #expect(throws: HTTPRequestParser.Error.self) { try self.parse("GET / HTTP/1.1\nHost: h\r\n\r\n") }
        #expect(throws: HTTPRequestParser.Error.self) { try self.parse("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n") }
    }

    /// A head whose lines end in bare LFs has no CRLF CRLF to wait for: refused as it arrives,
    /// not after the client's timeout. A CR and its LF in separate reads are one line end.
    @Test func refusesBareLineFeedsBeforeTheHeadEnds() throws {
        var parser = HTTPRequestParser()
        var bare = ByteBuffer(string: "GET / HTTP/1.1\nHost: h\n\n")
        #expect(throws: HTTPRequestParser.Error.bareLineFeed) { try parser.parse(&bare) }
        var split = HTTPRequestParser()
        var pieces = ByteBuffer(string: "GET / HTTP/1.1\r")
        #expect(try split.parse(&pieces) == nil)
        pieces.writeString("\nHost: h\r")
        #expect(try split.parse(&pieces) == nil)
        pieces.writeString("\n\r\n")
        #expect(try split.parse(&pieces)?.target == "/")
    }

    @Test func refusesAHeadLargerThanTheLimitEvenBeforeItEnds() {
        #expect(throws: HTTPRequestParser.Error.headTooLarge(limit: 256)) {
            try self.parse("GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "a", count: 300))
        }
    }

    @Test func notesABody() throws {
        #expect(try self.parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n")?.hasBody == true)
        #expect(try self.parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")?.hasBody == false)
    }

    @Test func headerLookupsFoldOnlyLettersSoUnderscoresAndCaretsMatchOnlyThemselves() {
        let headers: HTTPHeaders = [("X^A", "caret"), ("X_Tenant", "underscore")]
        #expect(headers["x^a"] == "caret")
        #expect(headers["x~a"] == nil)
        #expect(headers["x_tenant"] == "underscore")
        #expect(headers["x\u{7F}tenant"] == nil)
    }
}
