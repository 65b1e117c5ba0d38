import FerryServer
import FerryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The open-file cache keeps files open, and small ones in memory, between requests: it must
/// never answer with what changed. Every change below finished before the next request was
/// sent, so that request must see it — no waiting, no retries.
@Suite(.serialized) struct OpenFileCacheTests {
    let directory: TemporaryDirectory

    init() throws {
        self.directory = try TemporaryDirectory()
        mkdir(self.directory.path + "/sub", 0o755)
        self.directory.write("sub/page.txt", "one")
    }

    /// Asks twice (the first answer fills the cache, the second comes from it) and gives
    /// "STATUS BODY" when both agree.
    private func fetch(_ path: String, on connection: TestClient) throws -> String {
        var answers: [String] = []
        for _ in 0..<2 {
            try connection.get(path)
            let response = try connection.readResponse()
            answers.append("\(response.status) \(response.text.prefix(20))")
        }
        #expect(answers[0] == answers[1], "a cached answer differs from the one before it for \(path)")
        return answers[1]
    }

    @Test(arguments: [ExecutionModel.eventDriven, .dispatcher, .iterative])
    func everyKindOfChangeIsSeenByTheNextRequest(model: ExecutionModel) async throws {
        let root = self.directory.path
        try await withFileServer(.init(root: root, model: model, workers: 2)) { server in
            let connection = try TestClient(port: server.port)
            #expect(try self.fetch("/sub/page.txt", on: connection) == "200 one")

            // Written in place: same inode, same size.
            let fd = open(root + "/sub/page.txt", O_WRONLY)
            #expect(pwrite(fd, "two", 3, 0) == 3)
            close(fd)
            #expect(try self.fetch("/sub/page.txt", on: connection) == "200 two")

            // Truncated and rewritten, as an editor saves.
            self.directory.write("sub/page.txt", "three, longer")
            #expect(try self.fetch("/sub/page.txt", on: connection) == "200 three, longer")

            // Replaced by a rename, as a deploy does.
            self.directory.write("sub/next.txt", "four")
            rename(root + "/sub/next.txt", root + "/sub/page.txt")
            #expect(try self.fetch("/sub/page.txt", on: connection) == "200 four")

            // Written through a hard link under another name.
            link(root + "/sub/page.txt", root + "/other-name.txt")
            self.directory.write("other-name.txt", "five")
            #expect(try self.fetch("/sub/page.txt", on: connection) == "200 five")

            // Its folder moved away, then the file removed.
            rename(root + "/sub", root + "/moved")
            #expect(try self.fetch("/sub/page.txt", on: connection).hasPrefix("404"))
            #expect(try self.fetch("/moved/page.txt", on: connection) == "200 five")
            unlink(root + "/moved/page.txt")
            #expect(try self.fetch("/moved/page.txt", on: connection).hasPrefix("404"))

            // A folder two levels up moved.
            mkdir(root + "/moved/inner", 0o755)
            self.directory.write("moved/inner/deep.txt", "six")
            #expect(try self.fetch("/moved/inner/deep.txt", on: connection) == "200 six")
            rename(root + "/moved", root + "/gone")
            #expect(try self.fetch("/moved/inner/deep.txt", on: connection).hasPrefix("404"))

            // A folder's index, and a path through a symbolic link (served, never cached).
            self.directory.write("gone/index.html", "seven")
            #expect(try self.fetch("/gone/", on: connection) == "200 seven")
            symlink("gone/index.html", root + "/link.html")
            #expect(try self.fetch("/link.html", on: connection) == "200 seven")
            self.directory.write("gone/index.html", "eight")
            #expect(try self.fetch("/gone/", on: connection) == "200 eight")
            #expect(try self.fetch("/link.html", on: connection) == "200 eight")
        }
    }

    /// More files than the cache keeps: each answer is still its own file's.
    @Test func evictedFilesAreServedRight() async throws {
        let count = 1_100
        mkdir(self.directory.path + "/many", 0o755)
        for index in 0..<count { self.directory.write("many/\(index).txt", "file \(index)") }
        try await withFileServer(.init(root: self.directory.path, model: .eventDriven, workers: 2)) { server in
            let connection = try TestClient(port: server.port)
            for round in 0..<2 {
                for index in stride(from: round, to: count, by: 7) {
                    try connection.get("/many/\(index).txt")
                    #expect(try connection.readResponse().text == "file \(index)")
                }
            }
            self.directory.write("many/3.txt", "changed")
            try connection.get("/many/3.txt")
            #expect(try connection.readResponse().text == "changed")
        }
    }
}
