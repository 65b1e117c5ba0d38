import NIOCore
import Testing

@testable import FerryClient

@Suite struct ResponseReaderTests {
    private func read(_ chunks: [String]) throws -> [FetchedResponse] {
        var reader = ResponseReader()
        var answers: [FetchedResponse] = []
        for chunk in chunks {
            reader.feed(ByteBuffer(string: chunk))
            while let answer = try reader.next() { answers.append(answer) }
        }
        if let last = reader.closed() { answers.append(last) }
        return answers
    }

    @Test func answersSplitAnywhereAndPipelinedComeOutWhole() throws {
        let two =
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 5\r\n\r\nhello"
            + "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        for split in 1..<two.utf8.count {
            let bytes = Array(two.utf8)
            let answers = try self.read([
                String(decoding: bytes[..<split], as: UTF8.self), String(decoding: bytes[split...], as: UTF8.self),
            ])
            #expect(answers.map(\.status) == [200, 404], "split at \(split)")
            #expect(answers.first?.body == Array("hello".utf8))
            #expect(answers.first?.contentType == "text/html")
        }
    }

    @Test func aChunkedBodyIsDecodedAndA100ContinueSkipped() throws {
        let answers = try self.read([
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
        ])
        #expect(answers.count == 1)
        #expect(answers.first?.body == Array("hello world".utf8))
    }

    @Test func aBodyWithoutLengthEndsAtTheCloseAndTheConnectionIsNotKept() throws {
        let answers = try self.read(["HTTP/1.0 200 OK\r\n\r\nall of it"])
        #expect(answers.first?.body == Array("all of it".utf8))
        #expect(answers.first?.keepAlive == false)
    }

    @Test func ambiguousOrBrokenAnswersAreRefused() {
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/2 200\r\n\r\n",
        ] {
            #expect(throws: ResponseReader.Failure.self, "\(bad)") { _ = try self.read([bad]) }
        }
    }
}
