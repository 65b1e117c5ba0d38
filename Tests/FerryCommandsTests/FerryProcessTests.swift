import FerryClient
import FerryEndpoints
import FerryKV
import FerryPosix
import FerryServer
import FerryTestSupport
import FerryWire
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Runs the built `ferry` executable as a user would: reads its first line for the address,
/// talks to it, and stops it with a signal.
@Suite(.serialized, .onThreadsOfTheirOwn) struct FerryProcessTests {
    typealias Running = FerryProcess

    private func get(_ url: String) async throws -> (Int, String) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
        return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
    }

    @Test func serveFilesPrintsItsAddressFirstServesAndStopsOnSIGTERM() async throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let root = URL(fileURLWithPath: temporary.path)
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

    /// A supervisor may stop a server the moment it says it listens: the signal must find it ready
    /// to stop gracefully, not end it (status 143) because it came before the server ran.
    @Test(arguments: [
        ["serve", "files", "--root", "/", "--port", "0"],
        ["endpointd", "--port", "0"],
        ["switch", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9"],
    ])
    func aServerSignalledAsSoonAsItListensStopsGracefully(arguments: [String]) throws {
        for _ in 0..<5 {
            let server = try Running(arguments)
            let first = try #require(server.nextLine())
            #expect(first.hasPrefix("listening on "))
            #expect(server.stop(SIGTERM) == 0, "ferry \(arguments[0]) stopped by SIGTERM right after '\(first)'")
        }
    }

    @Test func fetchTakesAPageAndWhatItNamesAndSaysWhenItCannot() throws {
        let temporary = try TemporaryDirectory()
        let root = URL(fileURLWithPath: temporary.path)
        try "<img src=a.png><script src=b.js></script>".write(
            to: root.appendingPathComponent("index.html"),
            atomically: true,
            encoding: .utf8
        )
        try Data(repeating: 1, count: 3000).write(to: root.appendingPathComponent("a.png"))
        try "var b;".write(to: root.appendingPathComponent("b.js"), atomically: true, encoding: .utf8)
        let server = try Running(["serve", "files", "--root", root.path, "--port", "0"])
        defer { _ = server.stop(SIGTERM) }
        let address = String(try #require(server.nextLine()).dropFirst("listening on ".count))

        let fetch = try Running(["fetch", "http://\(address)/", "--parallel", "2", "--json"])
        var lines: [String] = []
        while let line = fetch.nextLine() { lines.append(line) }
        fetch.process.waitUntilExit()
        #expect(fetch.process.terminationStatus == 0)
        let summary = try JSONDecoder().decode([String: Double].self, from: Data(try #require(lines.last).utf8))
        #expect(summary["resources"] == 3 && summary["failed"] == 0 && summary["bytes"] == 3047)

        let refused = try Running(["fetch", "http://127.0.0.1:9/"], errors: .merged)
        #expect(refused.nextLine() == "Error: cannot connect to 127.0.0.1:9: connection refused")
        refused.process.waitUntilExit()
        #expect(refused.process.terminationStatus != 0)
    }

    @Test func serveFilesRefusesAMissingRootWithAClearError() throws {
        let server = try Running(["serve", "files", "--root", "/nonexistent/ferry"])
        #expect(server.nextLine() == nil)
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus != 0)
    }

    @Test func upStartsANodeAndStopsOnCtrlC() async throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let data = URL(fileURLWithPath: temporary.path)
        let node = try Running([
            "up", "--port", "0", "--control-port", "0", "--endpoints-port", "0", "--kv-port", "0", "--objects-port",
            "0", "--redirector-port", "0", "--dashboard-port", "0", "--dns-port",
            "0", "--data-dir", data.path,
        ])
        let first = try #require(node.nextLine())
        #expect(first.hasPrefix("listening on 127.0.0.1:"))
        let address = String(first.dropFirst("listening on ".count))
        var summary: [String] = []
        while let line = node.nextLine(), line != "Ctrl-C stops the node." { summary.append(line) }
        #expect(summary.contains { $0.hasPrefix("control   127.0.0.1:") })

        let (status, page) = try await self.get("http://\(address)/")
        #expect(status == 200)
        #expect(page.contains("Ferry node"))
        #expect(summary.contains { $0.hasPrefix("switch    http://\(address)/") })
        let (hello, greeting) = try await self.get("http://\(address)/app/hello")
        #expect(hello == 200 && greeting.contains("\"node\":\"app-"), "the front switch reaches the app tier")

        // The CDN: the redirector sends this client (127.0.0.1, east) to e1, which caches the origin.
        let cdn = try #require(summary.first { $0.hasPrefix("cdn ") })
        let redirector = try #require(
            cdn.split(separator: " ").first { $0.hasPrefix("http://") }.flatMap {
                ServiceEndpoint(String($0.dropFirst("http://".count).dropLast(2)))
            }
        )
        let location = try #require(TestClient(port: redirector.port).fetch("/hello.txt")?.header("Location"))
        #expect(location.hasPrefix("http://127.0.0.2:"))
        let edge = try #require(ServiceEndpoint(String(location.dropFirst("http://".count).prefix { $0 != "/" })))
        let cached = try TestClient(port: edge.port, host: edge.host)
        #expect(cached.fetch("/hello.txt")?.header("X-Cache") == "MISS")
        #expect(cached.fetch("/hello.txt")?.header("X-Cache") == "HIT")

        // The control CLI reaches the node's control endpoint.
        let controlAddress = try #require(
            summary.first { $0.hasPrefix("control") }?.split(separator: " ").dropFirst().first { !$0.isEmpty }
        )
        let stats = try Running(
            ["control", "--addr", String(controlAddress), "stats", "--json"],
            environment: ["FERRY_DATA_DIR": data.path]
        )
        let json = try #require(stats.nextLine())
        #expect(json.contains("\"requests_served\": 1"))

        #expect(node.stop(SIGINT) == 0, "Ctrl-C stops the node cleanly")
        #expect(node.nextLine() == "node stopped")
    }

    /// Runs a client command to completion; returns its exit status and standard output.
    private func command(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String) {
        let running = try Running(arguments, environment: environment)
        var lines: [String] = []
        while let line = running.nextLine() { lines.append(line) }
        running.process.waitUntilExit()
        return (running.process.terminationStatus, lines.joined(separator: "\n"))
    }

    @Test func upRunsAnEndpointDaemonThatNamesTheKVServiceForTheCLI() throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let data = URL(fileURLWithPath: temporary.path)
        let node = try Running([
            "up", "--port", "0", "--control-port", "0", "--endpoints-port", "0", "--kv-port", "0", "--objects-port",
            "0", "--redirector-port", "0", "--dashboard-port", "0", "--dns-port",
            "0",
            "--data-dir", data.path, "--nodes", "0",
        ])
        _ = try #require(node.nextLine())
        let endpointsLine = try #require(node.nextLine())
        #expect(endpointsLine.hasPrefix("endpoints on 127.0.0.1:"))
        let endpoints = String(endpointsLine.dropFirst("endpoints on ".count))
        var summary: [String] = []
        while let line = node.nextLine(), line != "Ctrl-C stops the node." { summary.append(line) }
        #expect(
            summary.contains { $0.hasPrefix("tls       \(data.path)/tls  ") },
            "without node processes it still says how FerryWire is secured"
        )
        #expect(!summary.contains { $0.hasPrefix("node ") })

        // The node's services register in the background: watch until kv is there.
        // Its commands find the cluster's credentials through FERRY_DATA_DIR (or --data-dir).
        let member = ["FERRY_DATA_DIR": data.path]
        let watch = try Running(["endpoints", "--addr", endpoints, "watch", "kv", "--json"], environment: member)
        while let line = watch.nextLine(), !line.contains("\"port\"") {}
        _ = watch.stop(SIGTERM)

        let (lookupStatus, lookup) = try self.command(
            ["endpoints", "--addr", endpoints, "lookup", "kv", "--json"],
            environment: member
        )
        #expect(lookupStatus == 0)
        #expect(lookup.contains("\"name\":\"kv\""))
        #expect(try self.command(["endpoints", "--addr", endpoints, "lookup", "nobody"], environment: member).0 != 0)

        // ferry kv finds the service by name; put exits 0 once the write is acknowledged.
        let kv = ["kv", "--endpoints", endpoints]
        #expect(try self.command(kv + ["put", "greeting", "hello"], environment: member).0 == 0)
        #expect(try self.command(kv + ["get", "greeting"], environment: member) == (0, "hello"))
        #expect(try self.command(kv + ["get", "missing"], environment: member).0 == 1)
        #expect(try self.command(kv + ["cas", "greeting", "nope", "x"], environment: member).0 == 1)
        #expect(try self.command(kv + ["cas", "greeting", "hello", "hi"], environment: member).0 == 0)
        #expect(try self.command(kv + ["ls", "greet", "--json"], environment: member) == (0, "{\"greeting\":\"hi\"}"))
        #expect(try self.command(kv + ["del", "greeting"], environment: member).0 == 0)
        #expect(try self.command(kv + ["del", "greeting"], environment: member).0 == 1)

        // ferry call binds the node's objects by name and prints results as JSON.
        let objects = try Running(
            ["endpoints", "--addr", endpoints, "watch", "objects:wasm-counter", "--json"],
            environment: member
        )
        while let line = objects.nextLine(), !line.contains("\"port\"") {}
        _ = objects.stop(SIGTERM)
        let call = ["call", "--addr", endpoints]
        #expect(try self.command(call + ["counter", "increment", #"{"by": 2}"#], environment: member) == (0, "2"))
        #expect(try self.command(call + ["counter", "increment", "[3]"], environment: member) == (0, "5"))
        #expect(try self.command(call + ["wasm-counter", "increment", #"{"by": 2}"#], environment: member) == (0, "2"))
        #expect(try self.command(call + ["counter", "increment", #"{"by": "x"}"#], environment: member).0 != 0)
        #expect(try self.command(call + ["counter", "reset"], environment: member).0 != 0)
        let (listed, table) = try self.command(["objects", "ls", "--addr", endpoints], environment: member)
        #expect(listed == 0)
        #expect(table.contains("counter ") && table.contains("persistent perObject shared") && table.contains("active"))

        #expect(node.stop(SIGINT) == 0)
    }

    /// The bytes a key is written with: its length and content follow from the key alone, so a
    /// torn or mixed-up value cannot pass for the real one.
    static func value(for key: String) -> [UInt8] {
        var hash: UInt32 = 2_166_136_261
        for byte in key.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        let length = Int(hash % 4096) + 1
        let pattern = Array(key.utf8)
        return (0..<length).map { pattern[$0 % pattern.count] &+ UInt8(truncatingIfNeeded: $0 / pattern.count) }
    }

    actor Ledger {
        var acknowledged: [String] = []
        /// Records an acknowledged write; true for the one that reaches `threshold`.
        func acknowledge(_ key: String, threshold: Int) -> Bool {
            self.acknowledged.append(key)
            return self.acknowledged.count == threshold
        }
    }

    /// Counts each counter's acknowledged increments, and those that got no answer (the kill).
    actor Tally {
        var acknowledged: [Int: Int] = [:]
        var unanswered: [Int: Int] = [:]
        var total: Int { self.acknowledged.values.reduce(0, +) }

        /// Records an acknowledged increment; true for the one that reaches `threshold`.
        func acknowledge(_ counter: Int, threshold: Int) -> Bool {
            self.acknowledged[counter, default: 0] += 1
            return self.total == threshold
        }

        func lost(_ counter: Int) { self.unanswered[counter, default: 0] += 1 }
    }

    /// Persistent objects lose no acknowledged change (write-through, group-committed): 20 rounds
    /// of kill -9 of `ferry serve objects` while eight clients increment eight counters; each
    /// counter then holds every acknowledged increment, and at most the unanswered ones besides
    /// (a call the kill cut off after its save but before its answer): none lost, none twice.
    @Test(arguments: StateBackend.available)
    func noAcknowledgedIncrementIsLostWhenTheObjectServerIsKilled(_ store: StateBackend) async throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let storage = try store.flags(file: temporary.path + "/objects.sqlite")
        let tally = Tally()
        for round in 0..<20 {
            let server = try Running(["serve", "objects", "--port", "0"] + storage)
            let first = try #require(server.nextLine())
            let address = try #require(listeningAddress(first))
            let client = ObjectClient(node: address)
            let threshold = await tally.total + Int.random(in: 1...40)
            let pid = server.process.processIdentifier
            await withTaskGroup(of: Void.self) { writers in
                for writer in 0..<8 {
                    writers.addTask {
                        let counter = client.reference("counter/w\(writer)", deadline: .seconds(2))
                        while true {
                            do {
                                _ = try await counter.invoke("increment", [.int(1)], idempotent: false)
                            } catch {
                                return await tally.lost(writer)
                            }
                            if await tally.acknowledge(writer, threshold: threshold) { kill(pid, SIGKILL) }
                        }
                    }
                }
            }
            // Every writer may have failed before the threshold (a starved run, calls past their
            // deadline): the server is killed all the same, or this would wait for it forever.
            kill(pid, SIGKILL)
            server.process.waitUntilExit()
            #expect(server.process.terminationReason == .uncaughtSignal, "round \(round): killed by SIGKILL")
            await client.close()
        }

        let server = try Running(["serve", "objects", "--port", "0"] + storage)
        let first = try #require(server.nextLine())
        let address = try #require(listeningAddress(first))
        let client = ObjectClient(node: address)
        let acknowledged = await tally.acknowledged
        let unanswered = await tally.unanswered
        #expect(acknowledged.values.reduce(0, +) >= 20)
        for writer in 0..<8 {
            let value = try await client.reference("counter/w\(writer)").invoke("get", [], idempotent: true)
            guard case .int(let count) = value else {
                Issue.record("counter/w\(writer) answered \(value)")
                continue
            }
            let floor = acknowledged[writer, default: 0]
            #expect(count >= floor, "counter/w\(writer) lost acknowledged increments: \(count) < \(floor)")
            #expect(count <= floor + unanswered[writer, default: 0], "counter/w\(writer) counted an increment twice")
        }
        await client.close()
        #expect(server.stop(SIGTERM) == 0)
    }

    /// Each acknowledgement of a write leaves the server after the write-ahead log was synced:
    /// the server runs under strace, which lists its syncs and its socket writes in order.
    @Test(
        .enabled(
            if: FileManager.default.isExecutableFile(atPath: "/usr/bin/strace"),
            "needs strace(1) to watch the server's system calls (apt-get install strace)"
        )
    )
    func everyCommitIsSyncedBeforeItIsAcknowledged() async throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let data = URL(fileURLWithPath: temporary.path)
        let trace = data.appendingPathComponent("trace").path
        let server = try Running(
            ["serve", "kv", "--db", data.appendingPathComponent("kv.sqlite").path, "--port", "0"],
            under: [
                "/usr/bin/strace", "-f", "-qq", "-yy", "-e", "trace=fsync,fdatasync,write,writev,sendmsg,sendto", "-o",
                trace,
            ]
        )
        let address = try #require(server.nextLine().flatMap(listeningAddress))
        let client = try await KVClient.connect(host: address.host, port: address.port)
        let writes = 20
        for index in 0..<writes { try await client.put("key\(index)", [UInt8(index)]) }
        await client.close()
        // strace blocks SIGTERM while it traces: the server itself, its child, is stopped.
        let strace = server.process.processIdentifier
        let children = try String(contentsOfFile: "/proc/\(strace)/task/\(strace)/children", encoding: .utf8)
        for child in children.split(separator: " ").compactMap({ Int32($0) }) { kill(child, SIGTERM) }
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus == 0, "strace exits as the server did: cleanly")

        // In the order the kernel saw them: a sync of the store's own log (what acknowledges a
        // write; SQLite's file is synced behind it), or an answer on a TCP socket. A sync's line
        // may be split by another thread's call; it counts from its start.
        var syncedSinceLastAnswer = false
        var answers = 0
        var unsynced = 0
        for line in try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n") {
            if (line.contains("fdatasync(") || line.contains("fsync(")) && line.contains("kv.sqlite-log") {
                syncedSinceLastAnswer = true
            } else if line.contains("TCP:[") && !line.contains("resumed>") {
                answers += 1
                if !syncedSinceLastAnswer { unsynced += 1 }
                syncedSinceLastAnswer = false
            }
        }
        #expect(answers >= writes, "strace saw the server answer each write")
        #expect(unsynced == 0, "\(unsynced) of \(answers) answers left before the log was synced")
    }

    @Test(arguments: StateBackend.available)
    func everyAcknowledgedWriteSurvivesKillNineAtRandomMoments(_ store: StateBackend) async throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let storage = try store.flags(file: temporary.path + "/kv.sqlite")
        let ledger = Ledger()
        var acknowledgedBefore = 0

        for round in 0..<20 {
            let server = try Running(["serve", "kv", "--port", "0"] + storage)
            let first = try #require(server.nextLine())
            let address = try #require(listeningAddress(first))
            let client = try await KVClient.connect(host: address.host, port: address.port)
            // Kill after a random number of acknowledgements, with eight writers in flight, so the
            // kill lands in the middle of group commits.
            let threshold = acknowledgedBefore + Int.random(in: 1...60)
            let pid = server.process.processIdentifier
            await withTaskGroup(of: Void.self) { writers in
                for writer in 0..<8 {
                    writers.addTask {
                        for index in 0... {
                            let key = "round\(round)/writer\(writer)/\(index)"
                            do {
                                try await client.put(key, Self.value(for: key))
                            } catch {
                                return  // the server is gone; this write was never acknowledged
                            }
                            if await ledger.acknowledge(key, threshold: threshold) { kill(pid, SIGKILL) }
                        }
                    }
                }
            }
            // Killed even when every writer failed before the threshold (see above).
            kill(pid, SIGKILL)
            server.process.waitUntilExit()
            #expect(server.process.terminationReason == .uncaughtSignal, "round \(round): killed by SIGKILL")
            await client.close()
            acknowledgedBefore = await ledger.acknowledged.count
        }

        let server = try Running(["serve", "kv", "--port", "0"] + storage)
        let line = try #require(server.nextLine())
        let address = try #require(listeningAddress(line))
        let client = try await KVClient.connect(host: address.host, port: address.port)
        let acknowledged = await ledger.acknowledged
        #expect(acknowledged.count >= 20)
        for key in acknowledged {
            let stored = try await client.get(key)
            #expect(stored == Self.value(for: key), "acknowledged write \(key) lost or torn")
        }
        // Writes in flight at a kill may be there or not, but never half there.
        var present = 0
        for round in 0..<20 {
            let entries = try await client.list(prefix: "round\(round)/", limit: 10_000)
            for entry in entries.entries {
                #expect(entry.value == Self.value(for: entry.key), "\(entry.key) is torn")
                present += 1
            }
        }
        #expect(present >= acknowledged.count)
        await client.close()
        #expect(server.stop(SIGTERM) == 0)
    }
}

extension FerryProcessTests {
    @Test func superserverPrintsEachEndpointAndReloadsOnSIGHUPKeepingItsConfigWhenTheNewOneIsBad() throws {
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let folder = URL(fileURLWithPath: temporary.path)
        let config = folder.appendingPathComponent("superserver.yaml")
        try """
        endpoints: off
        services:
          - {name: echo, listen: "127.0.0.1:0", mode: builtin, builtin: echo}
          - {name: cat, listen: "127.0.0.1:0", mode: nowait, program: /bin/cat}
        """.write(to: config, atomically: true, encoding: .utf8)

        let superserver = try Running(["superserver", "--config", config.path], errors: .merged)
        let echoLine = try #require(superserver.nextLine())
        let catLine = try #require(superserver.nextLine())
        #expect(echoLine.hasPrefix("listening on 127.0.0.1:") && echoLine.hasSuffix(" echo"))
        #expect(catLine.hasPrefix("listening on 127.0.0.1:") && catLine.hasSuffix(" cat"))
        let catPort = try #require(Int(catLine.split(separator: " ")[2].split(separator: ":")[1]))

        // A broken file and SIGHUP: refused, the superserver keeps serving the old configuration.
        try "services:\n  - name: cat\n    colour: red\n".write(to: config, atomically: true, encoding: .utf8)
        kill(superserver.process.processIdentifier, SIGHUP)
        var refusal: String?
        while refusal == nil, let line = superserver.nextLine() {
            if line.contains("reload refused") { refusal = line }
        }
        #expect(refusal?.contains("superserver.yaml:3: colour: unknown field") == true, "\(refusal ?? "no log line")")
        let client = try TestClient(port: catPort)
        client.send(Array("still here\n".utf8))
        #expect(client.line() == "still here")
        #expect(superserver.process.isRunning)
        #expect(superserver.stop(SIGTERM) == 0)
    }
}

extension FerryProcessTests {
    static let guests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Guests")

    @Test func guestRunCallsAnExportAndStopsARunawayWithItsReason() throws {
        let counter = Self.guests.appendingPathComponent("counter.wasm").path
        let (status, output) = try self.command(["guest", "run", counter, "--invoke", "increment", "2"])
        #expect(status == 0 && output == "2")

        let spin = Self.guests.appendingPathComponent("spin.wasm").path
        let runaway = try Running(
            ["guest", "run", spin, "--invoke", "spin", "--fuel", "5000000"],
            errors: .merged
        )
        var lines: [String] = []
        while let line = runaway.nextLine() { lines.append(line) }
        runaway.process.waitUntilExit()
        #expect(runaway.process.terminationStatus == 3)
        #expect(lines.contains("guest stopped: out of fuel after 5000000 units"))

        let hello = Self.guests.appendingPathComponent("hello.wasm").path
        #expect(try self.command(["guest", "run", hello, "x", "y"]) == (0, "hello from a guest: x y"))
        let (inspectStatus, inspect) = try self.command(["guest", "inspect", counter])
        #expect(inspect.contains("checkpoint: no"))
        #expect(inspectStatus == 0 && inspect.contains("export  increment (i32) -> (i32)"))
    }
}

extension FerryProcessTests {
    @Test func aGuestCheckpointedInOneProcessFinishesInAnother() throws {
        let sha256 = Self.guests.appendingPathComponent("sha256.wasm").path
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let snapshot = URL(fileURLWithPath: temporary.path + "/guest.snap")
        let size = 64 << 10
        let (saved, line) = try self.command([
            "guest", "checkpoint", sha256, "--invoke", "sha256_generated", String(size), "256", "--at", "2", "--out",
            snapshot.path,
        ])
        #expect(saved == 0 && line.hasPrefix("checkpointed into \(snapshot.path)"))
        let (restored, digest) = try self.command([
            "guest", "restore", snapshot.path, "--module", sha256, "--result-bytes", "32",
        ])
        #expect(restored == 0)
        let data = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 11)) }
        let file = URL(fileURLWithPath: temporary.path + "/data.bin")
        try Data(data).write(to: file)
        let expected = String(try ChildProcess.run(["/usr/bin/sha256sum", file.path]).output.prefix(64))
        #expect(digest == expected)

        // A damaged snapshot is refused, and nothing runs.
        var bytes = try [UInt8](Data(contentsOf: snapshot))
        bytes[bytes.count / 3] ^= 1
        try Data(bytes).write(to: snapshot)
        #expect(try self.command(["guest", "restore", snapshot.path, "--module", sha256]).0 != 0)
    }

    @Test func aRunningGuestIsCheckpointedThroughItsControlSocketAndGoesOnOrStops() throws {
        let sha256 = Self.guests.appendingPathComponent("sha256.wasm").path
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let folder = URL(fileURLWithPath: temporary.path)
        let socket = folder.appendingPathComponent("guest.sock").path
        let (first, second) = (
            folder.appendingPathComponent("a.snap").path, folder.appendingPathComponent("b.snap").path
        )
        // Enough work to outlast two checkpoint commands on a loaded machine (64 KiB did not once,
        // beside the other suites); the digest to expect is sha256sum's of the same bytes.
        let size = 256 << 10
        let call = ["--invoke", "sha256_generated", String(size), "1", "--result-bytes", "32"]
        let data = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 11)) }
        let file = URL(fileURLWithPath: temporary.path + "/data.bin")
        try Data(data).write(to: file)
        let expected = String(try ChildProcess.run(["/usr/bin/sha256sum", file.path]).output.prefix(64))

        let guest = try Running(["guest", "run", sha256] + call + ["--control", socket])
        #expect(guest.nextLine() == "control on \(socket)")
        let (leftStatus, left) = try self.command([
            "guest", "checkpoint", "--control", socket, "--out", first, "--leave-running",
        ])
        #expect(leftStatus == 0 && left.hasPrefix("checkpointed into \(first) ("))
        let (stoppedStatus, _) = try self.command(["guest", "checkpoint", "--control", socket, "--out", second])
        #expect(stoppedStatus == 0)
        #expect(guest.nextLine()?.hasPrefix("checkpointed into \(second); the guest stopped there") == true)
        guest.process.waitUntilExit()
        #expect(guest.process.terminationStatus == 0)

        // Each snapshot finishes the call elsewhere with the digest of an uninterrupted run.
        for snapshot in [first, second] {
            #expect(
                try self.command(["guest", "restore", snapshot, "--module", sha256, "--result-bytes", "32"]) == (
                    0, expected
                )
            )
        }
        // The guest is gone, and so is its socket: the request fails with a reason.
        let (gone, _) = try self.command(["guest", "checkpoint", "--control", socket, "--out", first])
        #expect(gone == 1)
    }
}

extension StateBackend {
    /// The flags that name a new store: `--db file`, or `--store` and a new database's URL.
    func flags(file: String) throws -> [String] {
        switch self {
        case .sqlite: ["--db", file]
        case .postgres: ["--store", try PostgresServer.shared().database()]
        }
    }
}

/// The address in a server's first line, `listening on HOST:PORT`.
func listeningAddress(_ line: String) -> ServiceEndpoint? {
    guard line.hasPrefix("listening on ") else { return nil }
    return ServiceEndpoint(String(line.dropFirst("listening on ".count)))
}
