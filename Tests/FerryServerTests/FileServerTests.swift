import FerryServer
import FerryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The file server's HTTP behaviour, the same under every execution model.
@Suite(.serialized) struct FileServerTests {
    let directory: TemporaryDirectory
    let content = TemporaryDirectory.pattern(10_000)

    init() throws {
        self.directory = try TemporaryDirectory()
        self.directory.write("data.bin", self.content)
        self.directory.write("index.html", "<h1>hi</h1>")
        self.directory.write("style.css", "a{}")
        mkdir(self.directory.path + "/sub", 0o755)
        mkdir(self.directory.path + "/empty", 0o755)
        self.directory.write("sub/inner.txt", "inner")
        symlink("sub/inner.txt", self.directory.path + "/inside-link")
        symlink(self.directory.path + "/sub/inner.txt", self.directory.path + "/absolute-inside-link")
        symlink("/etc/passwd", self.directory.path + "/absolute-link")
        symlink("../../../../../../etc/passwd", self.directory.path + "/sub/relative-link")
        symlink("/etc", self.directory.path + "/dir-link")
    }

    private func configuration(_ model: ExecutionModel) -> FileServer.Configuration {
        .init(root: self.directory.path, model: model, workers: 2)
    }

    @Test(arguments: ExecutionModel.allCases)
    func servesFilesWithKeepAliveAndValidators(model: ExecutionModel) async throws {
        try await withFileServer(self.configuration(model)) { server in
            let connection = try TestClient(port: server.port)
            try connection.get("/data.bin")
            let full = try connection.readResponse()
            #expect(full.status == 200)
            #expect(full.body == self.content)
            #expect(full.header("content-type") == "application/octet-stream")
            #expect(full.header("accept-ranges") == "bytes")
            #expect(full.header("ferry-connection-id") != nil)
            #expect(full.header("ferry-request-id") == "1")
            let etag = try #require(full.header("etag"))
            let modified = try #require(full.header("last-modified"))

            // Same connection: HEAD, a conditional GET by ETag and by date, the index, a MIME type.
            try connection.get("/data.bin", method: "HEAD")
            let head = try connection.readResponse(head: true)
            #expect(head.status == 200)
            #expect(head.header("content-length") == "10000")
            #expect(head.header("ferry-request-id") == "2")

            try connection.get("/data.bin", ["If-None-Match: W/\"nope\", \(etag)"])
            #expect(try connection.readResponse().status == 304)
            try connection.get("/data.bin", ["If-Modified-Since: \(modified)"])
            #expect(try connection.readResponse().status == 304)
            try connection.get("/data.bin", ["If-None-Match: \"other\"", "If-Modified-Since: \(modified)"])
            #expect(try connection.readResponse().status == 200, "If-None-Match decides when both are sent")
            try connection.get("/data.bin", ["If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT"])
            #expect(try connection.readResponse().status == 200)

            try connection.get("/")
            let index = try connection.readResponse()
            #expect(index.text == "<h1>hi</h1>")
            #expect(index.header("content-type") == "text/html; charset=utf-8")
            try connection.get("/style.css")
            #expect(try connection.readResponse().header("content-type") == "text/css; charset=utf-8")
            try connection.get("/inside-link")
            #expect(try connection.readResponse().text == "inner", "a symlink that stays inside the root is served")
        }
    }

    @Test(arguments: ExecutionModel.allCases)
    func servesSingleRanges(model: ExecutionModel) async throws {
        try await withFileServer(self.configuration(model)) { server in
            let connection = try TestClient(port: server.port)
            try connection.get("/data.bin", ["Range: bytes=100-199"])
            let part = try connection.readResponse()
            #expect(part.status == 206)
            #expect(part.header("content-range") == "bytes 100-199/10000")
            #expect(part.body == Array(self.content[100..<200]))

            try connection.get("/data.bin", ["Range: bytes=-16"])
            #expect(try connection.readResponse().body == Array(self.content.suffix(16)))

            try connection.get("/data.bin", ["Range: bytes=20000-"])
            let unsatisfiable = try connection.readResponse()
            #expect(unsatisfiable.status == 416)
            #expect(unsatisfiable.header("content-range") == "bytes */10000")

            try connection.get("/data.bin", ["Range: bytes=0-0,5-5"])
            #expect(try connection.readResponse().status == 200, "multiple ranges are answered with the whole file")
        }
    }

    /// Bodies past what is copied go by sendfile: straight from the page cache, or after readahead
    /// when the pages were evicted, in windows past the first megabyte, and behind an answer still
    /// going out. Every byte must arrive, in order, on one kept-alive connection.
    @Test(arguments: ExecutionModel.allCases)
    func servesLargerBodiesWholeFromTheCacheAndFromTheDisk(model: ExecutionModel) async throws {
        let sizes = [40_000, 200_000, 3 << 20 + 123]
        var contents: [Int: [UInt8]] = [:]
        for size in sizes {
            contents[size] = Self.numberedPages(size)
            self.directory.write("large-\(size).bin", contents[size]!)
        }
        try await withFileServer(self.configuration(model)) { server in
            let connection = try TestClient(port: server.port)
            for size in sizes {
                Self.evictFromPageCache(self.directory.path + "/large-\(size).bin")
                try connection.get("/large-\(size).bin")
                let cold = try connection.readResponse()
                #expect(cold.status == 200)
                #expect(cold.body == contents[size], "\(size) bytes read from the disk")
                try connection.get("/large-\(size).bin")
                #expect(try connection.readResponse().body == contents[size], "\(size) bytes from the page cache")
            }

            let big = contents[sizes[2]]!
            try connection.get("/large-\(sizes[2]).bin", ["Range: bytes=1500000-2600000"])
            let part = try connection.readResponse()
            #expect(part.status == 206)
            #expect(part.body == Array(big[1_500_000...2_600_000]))

            try connection.send(
                "GET /large-\(sizes[2]).bin HTTP/1.1\r\nHost: test\r\n\r\nGET /large-40000.bin HTTP/1.1\r\nHost: test\r\n\r\n"
            )
            #expect(try connection.readResponse().body == big)
            #expect(try connection.readResponse().body == contents[40_000], "the second answer follows the first whole")
        }
    }

    /// A file cut short while its answer is going out cannot give the length the head promised:
    /// the connection is closed once what was sent has arrived, rather than left hanging.
    @Test(arguments: ExecutionModel.allCases)
    func aFileThatShrinksWhileItIsSentEndsTheConnection(model: ExecutionModel) async throws {
        let size = 32 << 20  // more than the two sockets' buffers hold
        self.directory.writeLarge("shrinking.bin", megabytes: size >> 20)
        try await withFileServer(self.configuration(model)) { server in
            let connection = try TestClient(port: server.port)
            try connection.get("/shrinking.bin")
            let head = try connection.readHead()
            #expect(head.header("content-length") == String(size))
            let first = try connection.read(upTo: 65536).count
            truncate(self.directory.path + "/shrinking.bin", 1000)
            let rest = try connection.drainUntilClosed()  // fails at the client's 10 s timeout if left hanging
            #expect(first + rest < size)
        }
    }

    /// A client that stops reading mid-answer (a slow-read attack) is closed once it has taken no
    /// data for the idle timeout, under every model, rather than holding its connection forever.
    @Test(arguments: ExecutionModel.allCases)
    func aClientThatTakesNoDataMidAnswerIsClosedAtTheIdleTimeout(model: ExecutionModel) async throws {
        let size = 32 << 20  // more than the two sockets' buffers hold
        self.directory.writeLarge("unread.bin", megabytes: size >> 20)
        var configuration = self.configuration(model)
        configuration.timeouts.idle = .seconds(1)
        try await withFileServer(configuration) { server in
            let connection = try TestClient(port: server.port)
            try connection.get("/unread.bin")
            #expect(try connection.readHead().status == 200)
            try await server.waitFor("connections_timed_out", toBe: 1)
            let received = try connection.drainUntilClosed()  // fails at the client's 10 s timeout if left open
            #expect(received < size)
        }
    }

    /// The event-driven model's finite-state machine: one loop, one client that stops reading
    /// mid-answer, and the loop still answers everyone else at once — its stalled answer waits
    /// for the socket's room without holding the thread.
    @Test func oneEventLoopServesOthersWhileAClientTakesNoData() async throws {
        self.directory.writeLarge("stalled.bin", megabytes: 32)  // more than the two sockets' buffers hold
        var configuration = self.configuration(.eventDriven)
        configuration.workers = 1
        try await withFileServer(configuration) { server in
            let stalled = try TestClient(port: server.port)
            try stalled.get("/stalled.bin")
            #expect(try stalled.readHead().status == 200)
            for index in 0..<20 {
                let other = try TestClient(port: server.port)
                try other.get("/data.bin")
                let answer = try other.readResponse()  // fails at the client's 10 s timeout if the loop is held
                #expect(answer.body == self.content, "client \(index)")
            }
            try stalled.get("/data.bin")  // pipelined behind the stalled answer
            var remaining = 32 << 20
            while remaining > 0 {
                let chunk = try stalled.read(upTo: min(remaining, 1 << 16))
                try #require(!chunk.isEmpty, "the stalled answer ended \(remaining) bytes short")
                remaining -= chunk.count
            }
            #expect(try stalled.readResponse().body == self.content, "the pipelined request, answered after it")
        }
    }

    /// A pattern whose every 4 KiB page begins with its number, so a page out of place shows.
    private static func numberedPages(_ count: Int) -> [UInt8] {
        var bytes = TemporaryDirectory.pattern(count)
        for page in stride(from: 0, to: count - 4, by: 4096) {
            withUnsafeBytes(of: UInt32(page / 4096).littleEndian) { number in
                bytes.replaceSubrange(page..<page + 4, with: number)
            }
        }
        return bytes
    }

    private static func evictFromPageCache(_ path: String) {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return }
        fsync(descriptor)  // dirty pages are not dropped
        posix_fadvise(descriptor, 0, 0, POSIX_FADV_DONTNEED)
        close(descriptor)
    }

    @Test(arguments: ExecutionModel.allCases)
    func refusesEveryTraversalAttempt(model: ExecutionModel) async throws {
        let attempts: [(String, Int)] = [
            ("/../../../../etc/passwd", 403),
            ("/sub/../../etc/passwd", 403),
            ("/%2e%2e/%2e%2e/etc/passwd", 403),
            ("/..%2F..%2Fetc%2Fpasswd", 403),
            ("/%2E%2E%5C%2E%2E%5Cetc", 403),
            ("http://localhost/../etc/passwd", 403),
            ("/etc/passwd", 404),  // an absolute path is looked up under the root, not at /
            ("//etc/passwd", 404),
            ("/absolute-link", 403),
            ("/absolute-inside-link", 403),  // absolute symlinks are refused even when they point inside
            ("/sub/relative-link", 403),
            ("/dir-link/passwd", 403),
            ("/nul%00.txt", 400),
            ("/missing.txt", 404),
            ("/empty", 403),
        ]
        try await withFileServer(self.configuration(model)) { server in
            for (target, status) in attempts {
                let connection = try TestClient(port: server.port)
                try connection.get(target)
                let response = try connection.readResponse()
                #expect(response.status == status, "\(target)")
                #expect(!response.text.contains("root:"), "\(target) leaked /etc/passwd")
                #expect(response.text.hasPrefix("\(status) "), "error bodies say what went wrong")
            }
        }
    }

    @Test(arguments: ExecutionModel.allCases)
    func answersBadRequestsClearlyAndStaysUp(model: ExecutionModel) async throws {
        try await withFileServer(self.configuration(model)) { server in
            let post = try TestClient(port: server.port)
            try post.get("/data.bin", method: "DELETE")
            let refused = try post.readResponse()
            #expect(refused.status == 405)
            #expect(refused.header("allow") == "GET, HEAD")
            try post.get("/index.html")
            #expect(try post.readResponse().status == 200, "a 405 keeps the connection")

            let garbage = try TestClient(port: server.port)
            try garbage.send("HELLO THERE\r\n\r\n")
            let bad = try garbage.readResponse()
            #expect(bad.status == 400)
            #expect(bad.text.contains("malformed request line"))
            #expect(try garbage.drainUntilClosed() == 0, "a malformed request closes its connection")

            let smuggler = try TestClient(port: server.port)
            try smuggler.send("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n")
            #expect(try smuggler.readResponse().status == 400)

            let huge = try TestClient(port: server.port)
            try huge.send("GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "a", count: 20_000) + "\r\n\r\n")
            #expect(try huge.readResponse().status == 400)

            let fine = try TestClient(port: server.port)
            try fine.get("/index.html")
            #expect(try fine.readResponse().status == 200, "other clients are untouched")
        }
    }

    @Test(arguments: ExecutionModel.allCases)
    func closesWhenAskedAndCountsRequests(model: ExecutionModel) async throws {
        try await withFileServer(self.configuration(model)) { server in
            let connection = try TestClient(port: server.port)
            try connection.get("/index.html", ["Connection: close"])
            let response = try connection.readResponse()
            #expect(response.header("connection") == "close")
            #expect(try connection.drainUntilClosed() == 0)

            let old = try TestClient(port: server.port)
            try old.send("GET /index.html HTTP/1.0\r\n\r\n")
            #expect(try old.readResponse().status == 200)
            #expect(try old.drainUntilClosed() == 0, "HTTP/1.0 without keep-alive closes")

            let served = server.metrics.snapshot.first { $0.name == "requests_served" }?.value
            #expect(served == 2)
        }
    }
}
