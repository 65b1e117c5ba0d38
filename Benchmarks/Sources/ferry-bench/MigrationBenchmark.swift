import FerryEndpoints
import FerryGuest
import FerryMigration
import Foundation
import WasmKit

#if canImport(Glibc)
import Glibc
#endif

/// `ferry-bench migration --endpoints HOST:PORT --guests DIR --key KEYFILE [--sizes 1,16,64,256]
/// [--repeats 3] [--hops 20]`: process moves between two running nodes (`n1`, `n2`), beside
/// the same bytes sent over loopback TCP in the same run, one `key=value` per line for
/// Benchmarks/migration.sh:
///
/// - `move_ms_M`, `tcp_ms_M`, `bytes_M`, `downtime_ms_M`: a strong move of an idle guest of M MiB
///   (median), and the same bytes through one loopback TCP connection (the fastest of as many
///   runs: the link's limit, which the machine's noise only ever slows); `phase_P_ms_M`:
///   the median of each step of those moves (``MoveReport/phases``);
/// - `weak_ms`, `strong_ms`: both modes at 16 MiB; `code_first`, `code_second`: code bytes sent by
///   the first move of a module to a node and by the second;
/// - `hop_ms`: one hop of a mobile agent holding 1 MiB;
/// - `<idle|writing>_<stop|pre>_<total_ms|downtime_ms|rounds|pages|converged>`: stop-and-copy and
///   pre-copy of 64 MiB, idle and written at 64 MiB/s;
/// - `primes_plain_s`, `primes_movable_s`, `sha_plain_s`, `sha_movable_s`: what making a module
///   movable costs, in process (median of at least 5 runs of each, in turn);
/// - `capture_p50_ms`, `capture_max_ms`: how soon a loop that never calls the host is held once
///   asked, in process.
enum MigrationBenchmark {
    static func run(_ arguments: [String]) async throws {
        var daemon = ServiceEndpoint(host: "127.0.0.1", port: 7411)
        var folder = "Guests"
        var keyFile = ""
        var sizes = [1, 16, 64, 256]
        var repeats = 3
        var hops = 20
        try parseFlags(arguments) { flag, value in
            switch flag {
            case "--endpoints": daemon = ServiceEndpoint(value) ?? daemon
            case "--guests": folder = value
            case "--key": keyFile = value
            case "--sizes": sizes = value.split(separator: ",").compactMap { Int($0) }
            case "--repeats": repeats = Int(value) ?? repeats
            case "--hops": hops = Int(value) ?? hops
            default: return false
            }
            return true
        }
        let key = try SigningKey(path: keyFile)
        let memory = try ModuleSignature.sign(
            [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(folder)/memory.wasm"))),
            with: key
        )
        let cluster = try await Cluster(daemon: daemon)

        // The code cache: the first move of the module to n2 carries it, the next one does not.
        for size in sizes {
            var moves: [Double] = []
            var tcp: [Double] = []
            var downtimes: [Double] = []
            var bytes = 0
            var phases: [String: [Double]] = [:]
            let name = "mem-\(size)"
            try await cluster.spawn(
                name,
                code: memory,
                on: "n1",
                arguments: ["hold", String(size)],
                memoryMiB: size + 8
            )
            var at = "n1"
            for round in 0..<repeats {
                let to = at == "n1" ? "n2" : "n1"
                let started = ContinuousClock.now
                let report = try await cluster.migrate(name, from: at, to: to, strong: true)
                moves.append((ContinuousClock.now - started).milliseconds)
                downtimes.append(report.downtimeMilliseconds)
                for (phase, milliseconds) in report.phases { phases[phase, default: []].append(milliseconds) }
                if size == sizes.first {
                    if round == 0 { print("code_first=\(report.codeBytesSent)") }
                    if round == 1 { print("code_back=\(report.codeBytesSent)") }
                }
                bytes = report.bytesSent
                tcp.append(try Self.loopback(bytes))
                at = to
            }
            try await cluster.kill(name, on: at)
            print("bytes_\(size)=\(bytes)")
            print("move_ms_\(size)=\(Self.format(Self.median(moves)))")
            print("downtime_ms_\(size)=\(Self.format(Self.median(downtimes)))")
            print("tcp_ms_\(size)=\(Self.format(tcp.min() ?? 0))")
            for (phase, values) in phases { print("phase_\(phase)_ms_\(size)=\(Self.format(Self.median(values)))") }
        }

        // A second process of the same module to the same node: no code.
        try await cluster.spawn("again", code: memory, on: "n1", arguments: ["hold", "1"], memoryMiB: 9)
        print("code_second=\(try await cluster.migrate("again", from: "n1", to: "n2", strong: true).codeBytesSent)")
        try await cluster.kill("again", on: "n2")

        // Weak against strong, 16 MiB.
        for strong in [true, false] {
            let name = strong ? "strong-16" : "weak-16"
            try await cluster.spawn(name, code: memory, on: "n1", arguments: ["hold", "16"], memoryMiB: 48)
            let started = ContinuousClock.now
            _ = try await cluster.migrate(name, from: "n1", to: "n2", strong: strong)
            print("\(strong ? "strong" : "weak")_ms=\(Self.format((ContinuousClock.now - started).milliseconds))")
            try await cluster.kill(name, on: "n2")
        }

        // A mobile agent's hop, 1 MiB: the run with hops less the run without, per hop.
        var times: [Int: Double] = [:]
        for count in [0, hops] {
            let name = "shuttle-\(count)"
            let started = ContinuousClock.now
            try await cluster.spawn(
                name,
                code: memory,
                on: "n1",
                arguments: ["shuttle", "1", String(count), "n1", "n2"],
                memoryMiB: 9
            )
            try await cluster.wait(name, on: "n1")
            times[count] = (ContinuousClock.now - started).milliseconds
        }
        print("hop_ms=\(Self.format((times[hops]! - times[0]!) / Double(max(hops, 1))))")

        // What making a module movable costs: the same loops, plain and movable.
        let primes = try GuestModule(path: "\(folder)/primes.wasm")
        let sha = try GuestModule(path: "\(folder)/sha256.plain.wasm")
        for (label, module, call, warmUp) in [
            ("primes", primes, ("count_primes", [Value.i32(1_000_000)]), [Value.i32(100)]),
            ("sha", sha, ("sha256_generated", [Value.i32(8 << 20), .i32(0)]), [Value.i32(64), .i32(0)]),
        ] {
            // Plain and movable in turn, so that the machine's drift touches both alike.
            let forms = [("plain", module), ("movable", try module.movable())]
            var seconds: [String: [Double]] = [:]
            for _ in 0..<max(repeats, 5) {
                for (form, variant) in forms {
                    let instance = try GuestInstance(module: variant)
                    // WasmKit translates each function on its first call: not what is measured.
                    _ = try instance.invoke(call.0, warmUp)
                    let started = ContinuousClock.now
                    _ = try instance.invoke(call.0, call.1)
                    seconds[form, default: []].append((ContinuousClock.now - started).milliseconds / 1000)
                }
            }
            for (form, _) in forms {
                print("\(label)_\(form)_s=\(String(format: "%.3f", Self.median(seconds[form]!)))")
            }
        }

        // Pre-copy against stop-and-copy, 64 MiB: an idle guest, and one writing 64 MiB/s.
        let writer = try ModuleSignature.sign(
            [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(folder)/writer.wasm"))),
            with: key
        )
        for (workload, code, arguments) in [
            ("idle", memory, ["hold", "64"]), ("writing", writer, ["64", "64"]),
        ] {
            for mode in [MoveMode.stopAndCopy, .preCopy] {
                let name = "\(workload)-\(mode.rawValue)"
                try await cluster.spawn(name, code: code, on: "n1", arguments: arguments, memoryMiB: 80)
                if workload == "writing" { try await Task.sleep(for: .milliseconds(500)) }
                let started = ContinuousClock.now
                let report = try await cluster.migrate(name, from: "n1", to: "n2", mode: mode)
                let key = "\(workload)_\(mode == .preCopy ? "pre" : "stop")"
                print("\(key)_total_ms=\(Self.format((ContinuousClock.now - started).milliseconds))")
                print("\(key)_downtime_ms=\(Self.format(report.downtimeMilliseconds))")
                print("\(key)_rounds=\(report.rounds)")
                print("\(key)_pages=\(report.pagesSent)")
                print("\(key)_converged=\(report.converged ? 1 : 0)")
                try await cluster.kill(name, on: "n2")
            }
        }
        for node in ["n1", "n2"] {
            guard case .processes(let left) = try await cluster.nodes[node]!.request(.list) else { continue }
            for process in left where process.state == "running" {
                FileHandle.standardError.write(Data("ferry-bench: \(process.name) still runs on \(node)\n".utf8))
            }
        }

        // How soon a loop that never calls the host is held once a move asks for it.
        let latencies = try Self.captureLatencies(of: try primes.movable(), samples: 20)
        print("capture_p50_ms=\(Self.format(Self.median(latencies)))")
        print("capture_max_ms=\(Self.format(latencies.max() ?? 0))")
    }

    /// Milliseconds from ``GuestScheduler/requestCapture(_:)`` to the hold, `samples` times, for
    /// `count_primes` of a bound it never reaches, asked at a different moment of its run each time.
    static func captureLatencies(of module: GuestModule, samples: Int) throws -> [Double] {
        let scheduler = GuestScheduler(kernelThreads: 1)
        defer { scheduler.shutdown() }
        let held = NSCondition()
        nonisolated(unsafe) var heldAt: ContinuousClock.Instant?
        var latencies: [Double] = []
        for sample in 0..<samples {
            heldAt = nil
            let task = scheduler.spawn(module, export: "count_primes", arguments: [.i32(UInt32(Int32.max))]) { _, _ in
                held.lock()
                heldAt = ContinuousClock.now
                held.signal()
                held.unlock()
            }
            while task.firstSliceAt == nil { usleep(1000) }
            usleep(useconds_t(2000 + sample * 1500))
            let asked = ContinuousClock.now
            scheduler.requestCapture(task)
            held.lock()
            while heldAt == nil { held.wait() }
            latencies.append((heldAt! - asked).milliseconds)
            held.unlock()
            scheduler.release(task, with: .failure(CancellationError()))
        }
        return latencies
    }

    /// Milliseconds to send `count` bytes through one loopback TCP connection, from a buffer of
    /// that size into fresh memory (what a node does with a process's memory: the least a move
    /// must do), writer and reader on two threads.
    static func loopback(_ count: Int) throws -> Double {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) }
        }
        listen(listener, 1)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        let source = [UInt8](repeating: 0x5A, count: count)
        let done = NSCondition()
        nonisolated(unsafe) var finished = false
        nonisolated(unsafe) var target: UnsafeMutableRawPointer?
        let started = ContinuousClock.now
        Thread.detachNewThread {
            let client = accept(listener, nil, nil)
            // Fresh memory, untouched, as a process's new memory at a target is: the kernel
            // clears each page as the bytes first land in it.
            let buffer = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
            target = buffer
            var offset = 0
            while offset < count {
                let got = recv(client, buffer + offset, count - offset, 0)
                if got <= 0 { break }
                offset += got
            }
            close(client)
            done.lock()
            finished = true
            done.signal()
            done.unlock()
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        source.withUnsafeBytes { buffer in
            var offset = 0
            while offset < count {
                let sent = send(fd, buffer.baseAddress! + offset, min(4 << 20, count - offset), 0)
                if sent <= 0 { break }
                offset += sent
            }
        }
        done.lock()
        while !finished { done.wait() }
        done.unlock()
        let elapsed = (ContinuousClock.now - started).milliseconds
        munmap(target, count)
        close(fd)
        close(listener)
        return elapsed
    }

    static func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    static func format(_ value: Double) -> String { String(format: "%.2f", value) }

    /// The two nodes, through their FerryWire ports.
    struct Cluster {
        let nodes: [String: NodeClient]
        /// Where each node's FerryWire port is, for clients of their own.
        let endpoints: [String: ServiceEndpoint]

        init(daemon: ServiceEndpoint) async throws {
            let registry = try await EndpointClient.connect(host: daemon.host, port: daemon.port)
            var nodes: [String: NodeClient] = [:]
            var endpoints: [String: ServiceEndpoint] = [:]
            for name in ["n1", "n2"] {
                guard let endpoint = try await registry.lookup("node:\(name)").first?.endpoints.first else {
                    throw Failure("node \(name) is not registered at \(daemon)")
                }
                nodes[name] = try await NodeClient.connect(to: endpoint)
                endpoints[name] = endpoint
            }
            await registry.close()
            self.nodes = nodes
            self.endpoints = endpoints
        }

        func spawn(_ name: String, code: [UInt8], on node: String, arguments: [String], memoryMiB: Int) async throws {
            let spec = ProcessSpec(
                name: name,
                digest: ModuleDigest(of: code).hex,
                arguments: arguments,
                maxMemoryBytes: memoryMiB << 20
            )
            _ = try await self.nodes[node]!.request(.spawn(spec, code: Data(code)), timeout: .seconds(600))
            guard arguments.first == "hold" else { return }
            // Idle once it waits for a message: its memory is filled.
            while true {
                guard case .processes(let list) = try await self.nodes[node]!.request(.list) else { continue }
                if list.first(where: { $0.name == name })?.state == "waiting" { return }
                try await Task.sleep(for: .milliseconds(20))
            }
        }

        func migrate(_ name: String, from: String, to: String, strong: Bool) async throws -> MoveReport {
            try await self.migrate(name, from: from, to: to, mode: strong ? .strong : .weak)
        }

        func migrate(_ name: String, from: String, to: String, mode: MoveMode) async throws -> MoveReport {
            for try await reply in self.nodes[from]!.stream(.migrate(name, to: to, mode: mode)) {
                if case .report(let report) = reply { return report }
            }
            throw Failure("the move of \(name) ended without a report")
        }

        /// Waits for `name` to end, following it from node to node.
        func wait(_ name: String, on node: String) async throws {
            var at = node
            while true {
                var next: String?
                for try await reply in self.nodes[at]!.stream(.wait(name)) {
                    if case .finished(let outcome) = reply {
                        if let failure = outcome.failure { throw Failure("\(name): \(failure)") }
                        return
                    }
                    if case .moved(let other) = reply { next = other }
                }
                guard let next else { throw Failure("the wait for \(name) ended without an answer") }
                at = next
            }
        }

        func kill(_ name: String, on node: String) async throws {
            _ = try await self.nodes[node]!.request(.kill(name))
            _ = try await self.nodes[node]!.request(.kill(name))
        }
    }
}

extension Duration {
    var milliseconds: Double { Double(self.components.seconds) * 1e3 + Double(self.components.attoseconds) / 1e15 }
}
