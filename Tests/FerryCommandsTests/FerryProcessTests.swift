import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Runs the built `ferry` executable as a user would: reads its first line for the address,
/// talks to it, and stops it with a signal.
@Suite(.serialized) struct FerryProcessTests {
    /// The `ferry` binary next to this test bundle in the build folder.
    static var ferry: URL? {
        let buildFolder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [buildFolder, buildFolder.deletingLastPathComponent()].map {
            $0.appendingPathComponent("ferry")
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    final class Running {
        let process = Process()
        let output = Pipe()
        private var lines: [String] = []
        private var pending = Data()

        init(_ arguments: [String]) throws {
            guard let ferry = FerryProcessTests.ferry else {
                throw CocoaError(
                    .fileNoSuchFile,
                    userInfo: [NSLocalizedDescriptionKey: "build the ferry executable first (swift build)"]
                )
            }
            self.process.executableURL = ferry
            self.process.arguments = arguments
            self.process.standardOutput = self.output
            self.process.standardError = FileHandle.nullDevice
            try self.process.run()
        }

        /// The next line of standard output (waits for it: the process prints it when ready).
        func nextLine() -> String? {
            while true {
                if let newline = self.pending.firstIndex(of: 10) {
                    let line = String(decoding: self.pending[..<newline], as: UTF8.self)
                    self.pending.removeSubrange(...newline)
                    return line
                }
                let chunk = self.output.fileHandleForReading.availableData
                if chunk.isEmpty { return nil }
                self.pending.append(chunk)
            }
        }

        func stop(_ signal: Int32) -> Int32 {
            kill(self.process.processIdentifier, signal)
            self.process.waitUntilExit()
            return self.process.terminationStatus
        }

        deinit {
            if self.process.isRunning { self.process.terminate() }
        }
    }

    private func get(_ url: String) async throws -> (Int, String) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
        return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
    }

    @Test func serveFilesPrintsItsAddressFirstServesAndStopsOnSIGTERM() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try "hello".write(to: root.appendingPathComponent("hello.txt"), atomically: true, encoding: .utf8)

        let server = try Running(["serve", "files", "--root", root.path, "--port", "0", "--model", "dispatcher"])
        let first = try #require(server.nextLine())
        #expect(first.hasPrefix("listening on 127.0.0.1:"))
        let address = String(first.dropFirst("listening on ".count))
        let (status, body) = try await self.get("http://\(address)/hello.txt")
        #expect(status == 200)
        #expect(body == "hello")
        #expect(server.stop(SIGTERM) == 0, "SIGTERM stops the server gracefully")
    }

    @Test func serveFilesRefusesAMissingRootWithAClearError() throws {
        let server = try Running(["serve", "files", "--root", "/nonexistent/ferry"])
        #expect(server.nextLine() == nil)
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus != 0)
    }

    @Test func upStartsANodeAndStopsOnCtrlC() async throws {
        let node = try Running(["up", "--port", "0", "--control-port", "0"])
        let first = try #require(node.nextLine())
        #expect(first.hasPrefix("listening on 127.0.0.1:"))
        let address = String(first.dropFirst("listening on ".count))
        var summary: [String] = []
        while let line = node.nextLine(), line != "Ctrl-C stops the node." { summary.append(line) }
        #expect(summary.contains { $0.hasPrefix("control   127.0.0.1:") })

        let (status, page) = try await self.get("http://\(address)/")
        #expect(status == 200)
        #expect(page.contains("Ferry node"))

        // The control CLI reaches the node's control endpoint.
        let controlAddress = try #require(
            summary.first { $0.hasPrefix("control") }?.split(separator: " ").dropFirst().first { !$0.isEmpty }
        )
        let stats = try Running(["control", "--addr", String(controlAddress), "stats", "--json"])
        let json = try #require(stats.nextLine())
        #expect(json.contains("\"requests_served\": 1"))

        #expect(node.stop(SIGINT) == 0, "Ctrl-C stops the node cleanly")
        #expect(node.nextLine() == "node stopped")
    }
}
