// grpc-anchor: the anchor for comparing Ferry object calls with grpc-swift-2 unary calls.
//
//   grpc-anchor serve --port 0
//       serves `/ferry.bench.Counter/Increment` (see Counter.swift) over HTTP/2, plaintext, on
//       127.0.0.1; prints `listening on 127.0.0.1:PORT` once, then serves until killed.
//   grpc-anchor load --port P --concurrency C --duration S [--warmup S]
//       one client (one HTTP/2 connection) with C tasks, each calling Increment(by: 1) in a loop,
//       one call outstanding per task; calls during the warmup are not measured. Prints one line:
//       calls_per_second=<float> p50_us=<int> p99_us=<int> calls=<int>
import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

@main
struct GRPCAnchor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grpc-anchor",
        abstract: "gRPC (grpc-swift-2) anchor for Ferry's object-call benchmark.",
        subcommands: [Serve.self, Load.self]
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the Counter method.")

    @Option(help: "Port to listen on (0: any free port).")
    var port: Int = 0

    func run() async throws {
        var router = RPCRouter<HTTP2ServerTransport.Posix>()
        Counter().register(with: &router)
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(
                address: .ipv4(host: "127.0.0.1", port: self.port),
                transportSecurity: .plaintext
            ),
            router: router
        )
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            guard let address = try await server.listeningAddress?.ipv4 else {
                throw ValidationError("the server is not listening on IPv4")
            }
            // Unbuffered, so a script reading the pipe sees it at once.
            FileHandle.standardOutput.write(Data("listening on \(address.host):\(address.port)\n".utf8))
        }
    }
}

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Drive Increment calls and measure them.")

    @Option(help: "The server's port on 127.0.0.1.")
    var port: Int

    @Option(help: "Calls outstanding at once (one task each).")
    var concurrency: Int = 1

    @Option(help: "Seconds measured.")
    var duration: Double = 3

    @Option(help: "Seconds run first and not measured.")
    var warmup: Double = 1

    func run() async throws {
        let transport = try HTTP2ClientTransport.Posix(
            target: .ipv4(address: "127.0.0.1", port: self.port),
            transportSecurity: .plaintext
        )
        let (latencies, seconds) = try await withGRPCClient(transport: transport) { client in
            let clock = ContinuousClock()
            let measureFrom = clock.now.advanced(by: .seconds(self.warmup))
            let end = measureFrom.advanced(by: .seconds(self.duration))
            let request = ClientRequest(message: encodeInt64(1))

            let latencies = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for _ in 0..<self.concurrency {
                    group.addTask {
                        var mine: [Int64] = []  // nanoseconds, measured calls only
                        while true {
                            let start = clock.now
                            if start >= end { return mine }
                            _ = try await client.unary(
                                request: request,
                                descriptor: incrementMethod,
                                serializer: RawBytesCoder(),
                                deserializer: RawBytesCoder(),
                                options: .defaults
                            ) { try decodeInt64($0.message) }
                            if start >= measureFrom { mine.append(nanoseconds(start.duration(to: clock.now))) }
                        }
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            // From the end of the warmup until the last measured call finished.
            return (latencies, secondsIn(measureFrom.duration(to: clock.now)))
        }

        let sorted = latencies.sorted()
        func percentileMicroseconds(_ p: Double) -> Int64 {
            guard !sorted.isEmpty else { return 0 }
            let index = min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)
            return sorted[max(0, index)] / 1000
        }
        let rate = Double(sorted.count) / seconds
        print(
            "calls_per_second=\(String(format: "%.1f", rate)) p50_us=\(percentileMicroseconds(0.50))"
                + " p99_us=\(percentileMicroseconds(0.99)) calls=\(sorted.count)"
        )
    }
}

private func nanoseconds(_ d: Duration) -> Int64 {
    d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
}

private func secondsIn(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}
