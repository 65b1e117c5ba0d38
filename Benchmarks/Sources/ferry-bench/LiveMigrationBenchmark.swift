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
        var rest = arguments[...]
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else { throw Failure("\(flag) needs a value") }
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
            default: throw Failure("unknown option \(flag)")
            }
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
                    let report = try await cluster.migrate(name, from: "n1", to: "n2", mode: mode)
                    let fields: [String] = [
                        workload.name, "\(report.memoryBytes >> 20)", mode.rawValue,
                        MigrationBenchmark.format(report.totalMilliseconds),
                        MigrationBenchmark.format(report.downtimeMilliseconds), "\(report.bytesSent)",
                        "\(report.pagesSent)", "\(report.rounds)", report.converged ? "yes" : "no",
                        "\(report.throttled)", "\(report.pagesOnDemand)",
                    ]
                    print("row=" + fields.joined(separator: " "))
                    try await cluster.kill(name, on: "n2")
                }
            }
        }
    }
}
