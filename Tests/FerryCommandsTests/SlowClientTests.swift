import FerryTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension FerryProcessTests {
    /// A server under slowloris: what the test starts, where it listens, and the timeout it runs.
    struct SlowClientTarget: CustomTestStringConvertible, Sendable {
        var name: String
        /// The command line after `ferry`, given the directory it serves and, for the switch, the
        /// port of the file server behind it.
        var command: @Sendable (_ root: String, _ backendPort: Int) -> [String]
        var needsBackend: Bool
        var testDescription: String { self.name }
    }

    static let headerTimeout = 2.0

    static let slowClientTargets: [SlowClientTarget] = [
        .init(
            name: "event-driven file server",
            command: { root, _ in
                [
                    "serve", "files", "--root", root, "--model", "event-driven", "--header-timeout", "2",
                    "--max-connections-per-source", "4000",
                ]
            },
            needsBackend: false
        ),
        .init(
            name: "dispatcher file server",
            command: { root, _ in
                [
                    "serve", "files", "--root", root, "--model", "dispatcher", "--header-timeout", "2",
                    "--max-connections-per-source", "4000",
                ]
            },
            needsBackend: false
        ),
        .init(
            name: "l7 switch",
            command: { _, port in
                [
                    "switch", "--mode", "l7", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:\(port)",
                    "--client-timeout", "2", "--max-connections-per-source", "4000",
                ]
            },
            needsBackend: true
        ),
        .init(
            name: "edge",
            command: { _, port in
                [
                    "edge", "--origin", "http://127.0.0.1:\(port)", "--port", "0", "--header-timeout", "2",
                    "--max-connections-per-source", "4000",
                ]
            },
            needsBackend: true
        ),
    ]

    /// Starts `target` (behind it, for the switch, a file server) over a directory with
    /// `/name.txt`; returns the processes, to keep, and the port clients use.
    private func startSlowClientTarget(_ target: SlowClientTarget, root: String) throws -> ([Running], Int) {
        try Data("ferry".utf8).write(to: URL(fileURLWithPath: root + "/name.txt"))
        var processes: [Running] = []
        var backendPort = 0
        if target.needsBackend {
            let backend = try Running(["serve", "files", "--root", root], errors: .file(root + "/backend.log"))
            backendPort = try #require(backend.nextLine().flatMap(listeningAddress)).port
            processes.append(backend)
        }
        let server = try Running(target.command(root, backendPort), errors: .file(root + "/server.log"))
        var port = 0
        while let line = server.nextLine() {
            if let address = listeningAddress(line) {
                port = address.port
                break
            }
        }
        try #require(port != 0, "\(target.name) printed no address")
        processes.append(server)
        return (processes, port)
    }

    /// 2,000 connections from another address each send a request head one byte at a time; a
    /// normal client's requests are answered all the while, and the slow connections are closed
    /// at the header timeout (408 first, since each began a head), not before.
    @Test(arguments: slowClientTargets)
    func slowlorisConnectionsDoNotStopANormalClientAndCloseAtTheirTimeout(_ target: SlowClientTarget) throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let (processes, port) = try self.startSlowClientTarget(target, root: temporary.path)
        defer { for process in processes { _ = process.stop(SIGTERM) } }

        let count = 2000
        let started = Date()
        var slow = try (0..<count).map { _ in
            try Self.connect(port: port, source: "127.0.0.2", timeout: 2, to: processes, logs: temporary.path)
        }
        let trickle = Array("GET /name.txt HTTP/1.1\r\nHost: test\r\nX-Slow: ".utf8)
        var closedAfter: [Double] = []
        var answers: [String] = []
        var normalAnswers = 0
        var sent = 0
        let deadline = started.addingTimeInterval(Self.headerTimeout + 25)
        while !slow.isEmpty, Date() < deadline {
            // One byte to each slow connection, then a request of the normal client: three in the
            // first round, while every slow connection is surely open, then one a round.
            let byte = trickle[min(sent, trickle.count - 1)]
            sent += 1
            for client in slow { client.send([byte]) }
            for _ in 0..<(sent == 1 ? 3 : 1) {
                let normal = try Self.connect(port: port, timeout: 5, to: processes, logs: temporary.path)
                try normal.get("/name.txt")
                let response = try normal.readResponse()
                #expect(response.status == 200 && response.text == "ferry", "a normal client is answered under attack")
                normalAnswers += 1
            }
            // Those the server closed: what they got, and when.
            var descriptors = slow.map { pollfd(fd: $0.descriptor, events: Int16(POLLIN), revents: 0) }
            _ = poll(&descriptors, nfds_t(descriptors.count), 500)
            var open: [TestClient] = []
            for (client, polled) in zip(slow, descriptors) {
                guard polled.revents != 0 else {
                    open.append(client)
                    continue
                }
                let elapsed = Date().timeIntervalSince(started)
                answers.append(String(decoding: client.receive(200).prefix(12), as: UTF8.self))
                closedAfter.append(elapsed)
                client.close()
            }
            slow = open
        }
        #expect(
            slow.isEmpty,
            "\(slow.count) of \(count) slow connections were still open after \(deadline.timeIntervalSince(started)) s"
        )
        #expect(normalAnswers >= 3)
        let early = closedAfter.filter { $0 < Self.headerTimeout * 0.9 }
        #expect(early.isEmpty, "\(early.count) slow connections closed before the \(Self.headerTimeout) s timeout")
        let without408 = answers.filter { $0 != "HTTP/1.1 408" }
        #expect(without408.isEmpty, "each slow connection is answered 408 before it closes; \(without408.prefix(3))")
    }

    /// A client of a slow-client target; when it cannot connect, the error says whether the
    /// target's processes still run and how their logs end (a refusal seen once under the full suite).
    private static func connect(
        port: Int,
        source: String? = nil,
        timeout: Int,
        to processes: [Running],
        logs folder: String
    ) throws -> TestClient {
        do {
            return try TestClient(port: port, source: source, timeout: timeout)
        } catch {
            throw Self.failure(of: "connecting", error, to: processes, logs: folder)
        }
    }

    /// What failed, whether the target's processes still run, and how their logs end.
    private static func failure(
        of step: String,
        _ error: any Error,
        to processes: [Running],
        logs folder: String
    )
        -> TestFailure
    {
        let running = processes.map { $0.process.isRunning ? "running" : "exited" }.joined(separator: ", ")
        let logs = ["backend.log", "server.log"].compactMap { name -> String? in
            guard let text = try? String(contentsOfFile: folder + "/" + name, encoding: .utf8) else { return nil }
            return "\(name): \(text.split(separator: "\n").suffix(5).joined(separator: " | "))"
        }
        return TestFailure("\(step): \(error) (processes: \(running); \(logs.joined(separator: "; ")))")
    }

    /// On a keep-alive connection the idle wait (60 s by default) ends with the next head's first
    /// byte: from there the head has the header timeout (2 s here), not what is left of the idle.
    @Test(arguments: slowClientTargets)
    func aHeadThatFollowsAnAnswerHasTheHeaderTimeoutNotTheIdleOne(_ target: SlowClientTarget) throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let (processes, port) = try self.startSlowClientTarget(target, root: temporary.path)
        defer { for process in processes { _ = process.stop(SIGTERM) } }

        let client = try TestClient(port: port, timeout: 30)
        try client.get("/name.txt")
        #expect(try client.readResponse().status == 200)
        let started = Date()
        try client.send("GET /name.txt HTTP/1.1\r\nHo")
        let answer = try client.readResponse()
        let waited = Date().timeIntervalSince(started)
        #expect(answer.status == 408)
        #expect(waited < 20, "closed after \(waited) s: the idle timeout (60 s) ran instead of the header's (2 s)")
    }

    /// Past its cap an address's new connections are answered 503 and closed at once, while other
    /// addresses are served; a connection closed makes room for another.
    @Test(arguments: slowClientTargets)
    func connectionsPastTheCapPerSourceAreRefusedAtOnce(_ target: SlowClientTarget) throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        var capped = target
        let command = target.command
        capped.command = { root, port in
            var arguments = command(root, port)
            let flag = try! #require(arguments.firstIndex(of: "--max-connections-per-source"))
            arguments[flag + 1] = "4"
            return arguments
        }
        let (processes, port) = try self.startSlowClientTarget(capped, root: temporary.path)
        defer { for process in processes { _ = process.stop(SIGTERM) } }

        // Each step names itself when it fails, with how the target's logs end (a connection
        // closed without an answer was seen once at the edge under the full suite).
        let step = { (name: String, body: () throws -> Void) throws in
            do { try body() } catch { throw Self.failure(of: name, error, to: processes, logs: temporary.path) }
        }
        let held = try (0..<4).map { _ in try TestClient(port: port, source: "127.0.0.3") }
        for (index, client) in held.enumerated() {  // each is served: all four are in
            try step("held connection \(index + 1) of 4") {
                try client.get("/name.txt")
                #expect(try client.readResponse().status == 200)
            }
        }
        try step("the fifth connection, past the cap") {
            let fifth = try TestClient(port: port, source: "127.0.0.3")
            let refusal = try fifth.readResponse()
            #expect(refusal.status == 503)
            #expect(refusal.text.contains("too many connections from your address"))
            #expect(try fifth.drainUntilClosed() == 0, "the refused connection is closed")
        }
        try step("a connection from another address") {
            let other = try TestClient(port: port, source: "127.0.0.4")
            try other.get("/name.txt")
            #expect(try other.readResponse().status == 200, "another address is not held back")
        }

        held[0].close()
        let roomMade = waitUntil {
            guard let again = try? TestClient(port: port, source: "127.0.0.3"), (try? again.get("/name.txt")) != nil
            else { return false }
            return (try? again.readResponse().status) == 200
        }
        #expect(roomMade != nil, "a closed connection makes room for another from its address")
    }
}
