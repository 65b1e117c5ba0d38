import FerryEndpoints
import FerryGuest
import FerryMigration
import Foundation

/// `ferry-bench live-migration --endpoints HOST:PORT --guests DIR --key KEYFILE [--sizes 16,64,256]
/// [--rates 4,64,512] [--modes stop-and-copy,pre-copy,post-copy,hybrid]`: live migration as
/// Clark et al. measured it, between two running nodes (`n1`, `n2`), one line per move for
/// Benchmarks/live-migration.sh:
///
///     row=WORKLOAD MIB MODE TOTAL_MS DOWNTIME_MS BYTES PAGES ROUNDS CONVERGED THROTTLED ON_DEMAND
///
/// Workloads: `idle` (memory of pseudo-random bytes, waiting for a message), `writer-R` (writing
/// one word into each page of its memory in turn, R MiB of pages a second), and `sha256` (the
/// gated guest with its gate open: hashing, CPU-bound, at its own small size). And `tcp_ms_MIB=`: the same bytes as memory through one
/// loopback TCP connection, the fastest of three, for stop-and-copy's goal.
enum LiveMigrationBenchmark {
    static func run(_ arguments: [String]) async throws {
        var daemon = ServiceEndpoint(host: "127.0.0.1", port: 7411)
        var folder = "Guests"
        var keyFile = ""
        var sizes = [16, 64, 256]
        var rates = [4, 64, 512]
        var modes: [MoveMode] = [.stopAndCopy, .preCopy, .postCopy, .hybrid]
        try parseFlags(arguments) { flag, value in
            switch flag {
            case "--endpoints": daemon = ServiceEndpoint(value) ?? daemon
            case "--guests": folder = value
            case "--key": keyFile = value
            case "--sizes": sizes = value.split(separator: ",").compactMap { Int($0) }
            case "--rates": rates = value.split(separator: ",").compactMap { Int($0) }
            case "--modes":
                modes = try value.split(separator: ",").map {
                    guard let mode = MoveMode(rawValue: String($0)) else { throw Failure("no mode \($0)") }
                    return mode
                }
            default: return false
            }
            return true
        }
        let key = try SigningKey(path: keyFile)
        func signed(_ name: String) throws -> [UInt8] {
            try ModuleSignature.sign(
                [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(name).wasm"))),
                with: key
            )
        }
        let memory = try signed("memory")
        let writer = try signed("writer")
        let echo = try signed("echo")
        let sha = try signed("gated")
        let gate = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-gate-\(getpid())").path
        try FileManager.default.createDirectory(atPath: gate, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: gate + "/open", contents: nil)
        defer { try? FileManager.default.removeItem(atPath: gate) }
        let cluster = try await MigrationBenchmark.Cluster(daemon: daemon)

        for size in sizes {
            let fastest = try (0..<3).map { _ in try MigrationBenchmark.loopback(size << 20) }.min() ?? 0
            print("tcp_ms_\(size)=\(MigrationBenchmark.format(fastest))")
        }
        var workloads: [(name: String, code: [UInt8], arguments: (Int) -> [String], sizes: [Int])] = [
            ("idle", memory, { ["hold", "\($0)"] }, sizes)
        ]
        for rate in rates {
            workloads.append(("writer-\(rate)", writer, { ["\($0)", "\(rate)"] }, sizes))
        }
        workloads.append(("sha256", sha, { _ in [] }, [0]))
        workloads.append(("calls", echo, { ["\($0)"] }, sizes))
        // Each module moved once first, both ways: the code cache and the movable form are then
        // warm on both nodes, and the rows measure the memory and the state.
        for (index, (code, arguments)) in [(memory, ["hold", "1"]), (writer, ["1", "1"]), (echo, ["1"])].enumerated() {
            let name = "warm-\(index)"
            try await cluster.spawn(name, code: code, on: "n1", arguments: arguments, memoryMiB: 8)
            _ = try await cluster.migrate(name, from: "n1", to: "n2", mode: .stopAndCopy)
            _ = try await cluster.migrate(name, from: "n2", to: "n1", mode: .stopAndCopy)
            try await cluster.kill(name, on: "n1")
        }
        var count = 0
        for workload in workloads {
            for size in workload.sizes {
                for mode in modes {
                    count += 1
                    let name = "live-\(count)"
                    FileHandle.standardError.write(Data("  \(workload.name) \(size) MiB \(mode.rawValue)\n".utf8))
                    if workload.name == "sha256" {
                        // The gated SHA-256 guest (plain: the node makes it movable) with its gate
                        // open, hashing far more than it will before it is killed.
                        let spec = ProcessSpec(
                            name: name,
                            digest: ModuleDigest(of: sha).hex,
                            export: "hash",
                            arguments: ["2000000000"],
                            maxMemoryBytes: 64 << 20,
                            directories: [gate]
                        )
                        _ = try await cluster.nodes["n1"]!.request(
                            .spawn(spec, code: Data(sha)),
                            timeout: .seconds(600)
                        )
                    } else {
                        try await cluster.spawn(
                            name,
                            code: workload.code,
                            on: "n1",
                            arguments: workload.arguments(size),
                            memoryMiB: size + 32
                        )
                    }
                    // Running steadily before it moves (an idle guest waits already).
                    if workload.name != "idle" { try await Task.sleep(for: .milliseconds(300)) }
                    var caller: Caller?
                    if workload.name == "calls" {
                        caller = try await Caller.start(name, at: "n1", in: cluster)
                        try await Task.sleep(for: .milliseconds(300))
                    }
                    let moveStarted = ContinuousClock.now
                    let report = try await cluster.migrate(name, from: "n1", to: "n2", mode: mode)
                    let moveEnded = ContinuousClock.now
                    if let caller {
                        try await Task.sleep(for: .milliseconds(300))
                        let (during, failed, all) = await caller.stop(between: moveStarted, and: moveEnded)
                        print(
                            "calls=\(workload.name) \(report.memoryBytes >> 20) \(mode.rawValue) \(all) \(during.count) "
                                + "\(MigrationBenchmark.format(Self.percentile(during, 0.99))) "
                                + "\(MigrationBenchmark.format(during.max() ?? 0)) \(failed)"
                        )
                    }
                    let fields: [String] = [
                        workload.name, "\(report.memoryBytes >> 20)", mode.rawValue,
                        MigrationBenchmark.format(report.totalMilliseconds),
                        MigrationBenchmark.format(report.downtimeMilliseconds), "\(report.bytesSent)",
                        "\(report.pagesSent)", "\(report.memoryBytes)", "\(report.rounds)",
                        report.converged ? "yes" : "no",
                        "\(report.throttled)", "\(report.pagesOnDemand)",
                    ]
                    print("row=" + fields.joined(separator: " "))
                    print(
                        "phases=\(workload.name) \(report.memoryBytes >> 20) \(mode.rawValue) "
                            + report.phases.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(
                                separator: ","
                            )
                    )
                    try await cluster.kill(name, on: "n2")
                }
            }
        }
    }

    static func percentile(_ values: [Double], _ share: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * share))]
    }

    /// A steady client of a process: one call outstanding, sent again to where the process went
    /// when it moved, each call timed from its first sending to its answer.
    actor Caller {
        private var calls: [(started: ContinuousClock.Instant, milliseconds: Double)] = []
        private var failed = 0
        private var stopping = false
        private var loop: Task<Void, Never>?

        static func start(
            _ name: String,
            at node: String,
            in cluster: MigrationBenchmark.Cluster
        ) async throws -> Caller {
            let caller = Caller()
            var clients: [String: NodeClient] = [:]
            for (node, endpoint) in cluster.endpoints { clients[node] = try await NodeClient.connect(to: endpoint) }
            // Answering before the client starts: a guest filling its memory answers nothing yet.
            for _ in 0..<600 {
                if case .answer? = try? await clients[node]!.request(.call(name, message: Data("ready".utf8))) { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let connected = clients
            await caller.run(name, at: node, clients: connected)
            return caller
        }

        private func run(_ name: String, at first: String, clients: [String: NodeClient]) {
            self.loop = Task {
                var at = first
                var number = 0
                while await !self.isStopping {
                    number += 1
                    let message = Data("call \(number)".utf8)
                    let started = ContinuousClock.now
                    var answered = false
                    for _ in 0..<3 {
                        guard let client = clients[at],
                            let reply = try? await client.request(.call(name, message: message), timeout: .seconds(30))
                        else { break }
                        if case .answer(let answer) = reply, answer == Data("CALL \(number)".utf8) {
                            answered = true
                            break
                        }
                        guard case .moved(let node) = reply else { break }
                        at = node
                    }
                    await self.record(started, answered: answered)
                }
                for client in clients.values { await client.close() }
            }
        }

        private var isStopping: Bool { self.stopping }

        private func record(_ started: ContinuousClock.Instant, answered: Bool) {
            if answered {
                self.calls.append((started, (ContinuousClock.now - started).milliseconds))
            } else {
                self.failed += 1
            }
        }

        /// Stops the client; the latencies of calls that overlapped the move, the calls that failed,
        /// and how many there were in all.
        func stop(
            between start: ContinuousClock.Instant,
            and end: ContinuousClock.Instant
        ) async -> ([Double], Int, Int) {
            self.stopping = true
            await self.loop?.value
            let during = self.calls.filter { call in
                call.started <= end && call.started + .nanoseconds(Int64(call.milliseconds * 1e6)) >= start
            }
            return (during.map(\.milliseconds), self.failed, self.calls.count + self.failed)
        }
    }
}
