import FerryEndpoints
import FerryTestSupport
import Foundation
import Testing

extension FerryProcessTests {
    /// Requests through the switch from a few threads, each on a keep-alive connection, counting
    /// answers and anything that is not a 200.
    final class SteadyLoad: @unchecked Sendable {
        private let lock = NSLock()
        private var stopping = false
        private var succeeded = 0
        private var failures: [String] = []
        private var threads: [Thread] = []
        private let finished = DispatchGroup()

        init(port: Int, clients: Int) {
            for _ in 0..<clients {
                self.finished.enter()
                let thread = Thread { [self] in
                    defer { self.finished.leave() }
                    var client: TestClient?
                    while !self.lock.withLock({ self.stopping }) {
                        if client == nil { client = try? TestClient(port: port, timeout: 5) }
                        guard let connection = client else {
                            self.record(failure: "cannot connect to the switch")
                            continue
                        }
                        let status = connection.fetch("/name.txt")?.status
                        if status == 200 {
                            self.lock.withLock { self.succeeded += 1 }
                        } else {
                            self.record(failure: status.map { "status \($0)" } ?? "no answer")
                            client = nil
                        }
                    }
                }
                self.threads.append(thread)
                thread.start()
            }
        }

        var answered: Int { self.lock.withLock { self.succeeded } }

        /// Stops the load and returns how many requests were answered and what failed.
        func stop() -> (answered: Int, failures: [String]) {
            self.lock.withLock { self.stopping = true }
            self.finished.wait()
            return self.lock.withLock { (self.succeeded, self.failures) }
        }

        private func record(failure: String) {
            self.lock.withLock { self.failures.append(failure) }
        }
    }

    /// The backends' `up` flags, from the switch's control socket.
    private func backendsUp(control: String) throws -> [Bool] {
        let stats = try Running(["switch", "stats", "--control", control, "--json"])
        let line = stats.nextLine() ?? "{}"
        stats.process.waitUntilExit()
        struct Stats: Decodable {
            struct Backend: Decodable { var up: Bool }
            var backends: [Backend]
        }
        return try JSONDecoder().decode(Stats.self, from: Data(line.utf8)).backends.map(\.up)
    }

    @Test func killingABackendUnderLoadFailsNoRequestAndItRejoinsWhenBack() throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let directory = temporary.path
        try Data("ferry".utf8).write(to: URL(fileURLWithPath: directory + "/name.txt"))
        func backend(port: Int = 0) throws -> (Running, Int) {
            let server = try Running(["serve", "files", "--root", directory, "--port", String(port), "--workers", "1"])
            let address = try #require(server.nextLine().flatMap(listeningAddress))
            return (server, address.port)
        }
        var backends = try (0..<3).map { _ in try backend() }
        let control = directory + "/switch.sock"
        let interval = 1.0
        let front = try Running(
            [
                "switch", "--mode", "l7", "--listen", "127.0.0.1:0", "--health-interval", String(interval), "--control",
                control,
            ]
                + backends.flatMap { ["--backend", "127.0.0.1:\($0.1)"] }
        )
        let address = try #require(front.nextLine().flatMap(listeningAddress))
        #expect(front.nextLine() == "control on \(control)")

        let load = SteadyLoad(port: address.port, clients: 4)
        _ = waitUntil(within: .seconds(10)) { load.answered >= 200 }
        let victim = backends[1]
        #expect(victim.0.stop(SIGKILL) != 0)
        let left = try waitUntil(within: .seconds(30)) { try self.backendsUp(control: control) == [true, false, true] }
        let answeredAtKill = load.answered
        _ = waitUntil(within: .seconds(10)) { load.answered >= answeredAtKill + 300 }

        backends[1] = try backend(port: victim.1)
        let rejoined = try waitUntil(within: .seconds(30)) {
            try self.backendsUp(control: control) == [true, true, true]
        }
        _ = waitUntil(within: .seconds(10)) { load.answered >= answeredAtKill + 600 }
        let (answered, failures) = load.stop()

        #expect(failures.isEmpty, "no request may fail: \(failures.prefix(5))")
        #expect(answered >= answeredAtKill + 600)
        let leftAfter = try #require(left, "the killed backend never left rotation")
        // One interval until the next check, and the time of the poll that saw it (a `ferry switch
        // stats` process each, slow on a loaded machine).
        #expect(leftAfter < .seconds(interval * 1.5), "it left rotation at the next health check: \(leftAfter)")
        let rejoinedAfter = try #require(rejoined, "the restarted backend never rejoined")
        #expect(rejoinedAfter < .seconds(interval * 1.5), "it rejoined at the next check: \(rejoinedAfter)")
        #expect(front.stop(SIGTERM) == 0)
        for server in backends where server.0.process.isRunning { _ = server.0.stop(SIGTERM) }
    }
}

extension FerryProcessTests {
    @Test func switchReloadsItsFileOnSIGHUPKeepingEstablishedConnections() throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let directory = temporary.path
        var servers: [Running] = []
        var ports: [Int] = []
        for name in ["one", "two"] {
            try FileManager.default.createDirectory(atPath: "\(directory)/\(name)", withIntermediateDirectories: true)
            try Data(name.utf8).write(to: URL(fileURLWithPath: "\(directory)/\(name)/name.txt"))
            let server = try Running(["serve", "files", "--root", "\(directory)/\(name)", "--port", "0"])
            ports.append(try #require(server.nextLine().flatMap(listeningAddress)).port)
            servers.append(server)
        }
        let file = directory + "/switch.yaml"
        func configure(_ text: String) throws { try Data(text.utf8).write(to: URL(fileURLWithPath: file)) }
        try configure("mode: l4\nlisten: 127.0.0.1:0\nbackends: [127.0.0.1:\(ports[0])]\n")
        // Its log lines too: the refusal of a bad file is the signal to wait for.
        let front = try Running(["switch", "--config", file], errors: .merged)
        var listening: ServiceEndpoint?
        while listening == nil, let line = front.nextLine() { listening = listeningAddress(line) }
        let address = try #require(listening)
        func name(on client: TestClient) -> String { client.fetch("/name.txt")?.text ?? "no answer" }
        let established = try TestClient(port: address.port)
        #expect(name(on: established) == "one")

        try configure("mode: l4\nlisten: 127.0.0.1:0\nbackends: [127.0.0.1:\(ports[1])]\n")
        kill(front.process.processIdentifier, SIGHUP)
        let reloaded = waitUntil(within: .seconds(30)) {
            guard let fresh = try? TestClient(port: address.port) else { return false }
            return name(on: fresh) == "two"
        }
        #expect(reloaded != nil, "new connections reach the new backend")
        #expect(name(on: established) == "one", "the established connection stays with its backend")

        // A bad file is refused; the running switch stays.
        try configure("mode: l4\nlisten: 127.0.0.1:0\nbackends: [not an address]\n")
        kill(front.process.processIdentifier, SIGHUP)
        var refusal: String?
        while refusal == nil, let line = front.nextLine() {
            if line.contains("reload refused") { refusal = line }
        }
        #expect(
            refusal?.contains("backends") == true,
            "the switch says why it refused the file: \(refusal ?? "no line")"
        )
        #expect(name(on: try TestClient(port: address.port)) == "two")
        #expect(front.stop(SIGTERM) == 0)
        for server in servers { _ = server.stop(SIGTERM) }
    }
}
