import FerryHTTP
import Testing

@Suite struct BodyFramingTests {
    @Test(arguments: [1, 2, 3, 7, 1000])
    func aChunkedBodyEndsExactlyWhereItShouldHoweverItArrives(piece: Int) throws {
        let body = Array(
            "4\r\nWiki\r\n5;name=value\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n".utf8
        )
        let next = Array("GET /next HTTP/1.1\r\n".utf8)
        var framing = BodyFraming.chunked()
        var taken = 0
        var offset = 0
        let bytes = body + next
        while !framing.isComplete, offset < bytes.count {
            let end = min(offset + piece, bytes.count)
            let count = try bytes[offset..<end].withUnsafeBytes { try framing.consume($0) }
            taken += count
            offset += count
            if count == 0 { break }
        }
        #expect(framing.isComplete)
        #expect(taken == body.count, "the next request's bytes are left alone")
    }

    @Test func malformedChunkedBodiesAreRefused() {
        for bad in ["zz\r\n", "5\r\nhelloXX", "\r\n", "5\nhello", String(repeating: "f", count: 17) + "\r\n"] {
            var framing = BodyFraming.chunked()
            #expect(throws: BodyFraming.Failure.self, "\(bad.debugDescription)") {
                _ = try Array(bad.utf8).withUnsafeBytes { try framing.consume($0) }
            }
        }
    }

    @Test func aLengthTakesNoMoreThanItSays() throws {
        var framing = BodyFraming(.length(remaining: 5))
        let taken = try Array("helloGET".utf8).withUnsafeBytes { try framing.consume($0) }
        #expect(taken == 5 && framing.isComplete)
    }
}
