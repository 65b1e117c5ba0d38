// ferry-bench objects: the object server's side of Benchmarks/objects.sh.
//
//   ferry-bench objects serve [--threading perInvocation]     an object node hosting `counter`
//   ferry-bench objects load --addr HOST:PORT --concurrency C --seconds S [--warmup S] [--callers-on loop|pool]
//       one client (one connection), C callers of counter.increment(by: 1) through the generated
//       stub; prints calls_per_second=<r> p50_us=<µs> p99_us=<µs> calls=<n>, as grpc-anchor does.
//       The callers run on the connection's event loop (each call's answer resumes its caller on
//       the thread that read it, as gRPC C++'s callback API starts the next call from the
//       callback), or with `pool` on the cooperative pool, as a task that asks nothing does.
//   ferry-bench objects policies [--callers 64] [--seconds 2] [--work-ms 1]
//       calls/s of each threading policy as the number of objects grows from 1 to 10,000
//   ferry-bench objects activation [--count 300]
//       latency of a call that activates a persistent object, against one to an active object
import FerryClient
import FerryEndpoints
import FerryExamples
import FerryObjects
import FerryPosix
import FerryWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix

enum ObjectsBenchmark {
    static func run(_ arguments: [String]) async throws {
        guard let command = arguments.first else {
            throw Failure("usage: ferry-bench objects serve|load|policies|activation")
        }
        var flags: [String: String] = [:]
        var rest = arguments.dropFirst()
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else { throw Failure("\(flag) needs a value") }
            flags[flag] = value
        }
        switch command {
        case "serve": try await self.serve(threading: flags["--threading"] ?? "perInvocation")
        case "load":
            guard let address = flags["--addr"].flatMap({ ServiceEndpoint($0) }) else {
                throw Failure("load needs --addr HOST:PORT")
            }
            let callersOn = flags["--callers-on"] ?? "loop"
            guard callersOn == "loop" || callersOn == "pool" else {
                throw Failure("--callers-on takes loop or pool; got '\(callersOn)'")
            }
            try await self.load(
                address,
                concurrency: Int(flags["--concurrency"] ?? "1") ?? 1,
                seconds: Double(flags["--seconds"] ?? "5") ?? 5,
                warmup: Double(flags["--warmup"] ?? "1") ?? 1,
                callersOnLoop: callersOn == "loop"
            )
        case "policies":
            try await self.policies(
                callers: Int(flags["--callers"] ?? "64") ?? 64,
                seconds: Double(flags["--seconds"] ?? "2") ?? 2,
                work: .milliseconds(Int64(flags["--work-ms"] ?? "1") ?? 1)
            )
        case "activation": try await self.activation(count: Int(flags["--count"] ?? "300") ?? 300)
        default: throw Failure("unknown objects command \(command)")
        }
    }

    static func serve(threading: String) async throws {
        guard let threading = ObjectPolicy.Threading(rawValue: threading) else {
            throw Failure("--threading takes single, perObject or perInvocation")
        }
        let adapter = try ObjectAdapter(
            name: "bench",
            policy: ObjectPolicy(threading: threading),
            types: [Counter.type()]
        )
        let server = try await ObjectServer.bind(adapters: [adapter], logger: Logger(label: "bench"))
        print("listening on \(server.host):\(server.port)")
        fflush(nil)
        try await server.run()
    }

    static func load(
        _ address: ServiceEndpoint,
        concurrency: Int,
        seconds: Double,
        warmup: Double,
        callersOnLoop: Bool
    ) async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let client = ObjectClient(node: address, eventLoop: loop)
        let counter = CounterStub(client.reference("counter"))
        _ = try await counter.increment(by: 1)
        let measureFrom = ContinuousClock.now + .milliseconds(Int64(warmup * 1000))
        let end = measureFrom + .milliseconds(Int64(seconds * 1000))
        // Child tasks take their group's executor preference.
        let latencies = try await withTaskExecutorPreference(callersOnLoop ? EventLoopTaskExecutor(loop) : nil) {
            try await self.measure(counter, concurrency: concurrency, from: measureFrom, until: end)
        }
        // From the end of the warm-up until the last measured call finished, as grpc-anchor counts.
        let elapsed = (ContinuousClock.now - measureFrom).inSeconds
        await client.close()
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Int64 {
            sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))].wholeMicroseconds
        }
        print(
            "calls_per_second=\(String(format: "%.1f", Double(sorted.count) / elapsed)) p50_us=\(percentile(0.5)) p99_us=\(percentile(0.99)) calls=\(sorted.count)"
        )
    }

    /// The latencies of the calls `concurrency` callers start between `measureFrom` and `end`.
    private static func measure(
        _ counter: CounterStub,
        concurrency: Int,
        from measureFrom: ContinuousClock.Instant,
        until end: ContinuousClock.Instant
    ) async throws -> [Duration] {
        try await withThrowingTaskGroup(of: [Duration].self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var latencies: [Duration] = []
                    while true {
                        let start = ContinuousClock.now
                        guard start < end else { return latencies }
                        _ = try await counter.increment(by: 1)
                        if start >= measureFrom { latencies.append(ContinuousClock.now - start) }
                    }
                }
            }
            var all: [Duration] = []
            for try await latencies in group { all += latencies }
            return all
        }
    }

    /// A method that waits `work` without a thread, as one that waits on storage does.
    final class Waiter: ObjectServant {
        let work: Duration
        init(work: Duration) { self.work = work }
        func invoke(_ method: String, arguments: ObjectValue) async throws -> ObjectValue {
            try await Task.sleep(for: self.work)
            return .null
        }
    }

    static func policies(callers: Int, seconds: Double, work: Duration) async throws {
        let counts = [1, 10, 100, 1000, 10_000]
        print("calls/s with \(callers) callers; each call waits \(work) (as on storage); objects picked at random")
        print(
            "threading      |" + counts.map { " \(String($0).leftPadded(8)) objects" }.joined(separator: " |")
        )
        print("-------------- |" + counts.map { _ in " ----------------" }.joined(separator: " |"))
        for threading in ObjectPolicy.Threading.allCases {
            var row = threading.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0) + " |"
            for count in counts {
                let adapter = try ObjectAdapter(
                    name: "bench",
                    policy: ObjectPolicy(threading: threading),
                    types: [ObjectType(name: "waiter") { _, _ in Waiter(work: work) }]
                )
                // Every object active before the clock starts.
                for index in 0..<count { try await adapter.activate("waiter/\(index)") }
                let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
                let calls = try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<callers {
                        group.addTask {
                            var calls = 0
                            while ContinuousClock.now < end {
                                _ = try await adapter.call(
                                    "waiter/\(Int.random(in: 0..<count))",
                                    method: "wait",
                                    arguments: .list([])
                                )
                                calls += 1
                            }
                            return calls
                        }
                    }
                    return try await group.reduce(0, +)
                }
                row += " \(String(format: "%8.0f", Double(calls) / seconds)) calls/s |"
            }
            print(String(row.dropLast(2)))
        }
    }

    static func activation(count: Int) async throws {
        let logger = Logger(label: "bench")
        let daemon = try await EndpointDaemon.bind(port: 0, logger: logger)
        let store = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-bench-\(UUID()).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: store) }
        let adapter = try ObjectAdapter(
            name: "bench",
            policy: ObjectPolicy(activation: .persistent),
            types: [Counter.type()],
            store: try ObjectStore(path: store)
        )
        let server = try await ObjectServer.bind(
            adapters: [adapter],
            registry: .daemon(ServiceEndpoint(host: "127.0.0.1", port: daemon.port)),
            logger: logger
        )
        let client = ObjectClient(node: server.node)
        var first: [Duration] = []
        var active: [Duration] = []
        var reactivated: [Duration] = []
        _ = try await CounterStub(client.reference("counter/warm")).increment(by: 1)
        for index in 0..<count {
            let counter = CounterStub(client.reference("counter/\(index)"))
            var start = ContinuousClock.now
            _ = try await counter.increment(by: 1)
            first.append(ContinuousClock.now - start)
            start = ContinuousClock.now
            _ = try await counter.increment(by: 1)
            active.append(ContinuousClock.now - start)
            await adapter.deactivate("counter/\(index)")
            start = ContinuousClock.now
            _ = try await counter.increment(by: 1)
            reactivated.append(ContinuousClock.now - start)
        }
        func line(_ name: String, _ samples: [Duration]) -> String {
            let sorted = samples.sorted()
            let p50 = sorted[sorted.count / 2].wholeMicroseconds
            let p99 = sorted[min(sorted.count - 1, sorted.count * 99 / 100)].wholeMicroseconds
            return
                "\(name.padding(toLength: 44, withPad: " ", startingAt: 0)) | \(String(p50).leftPadded(7)) | \(String(p99).leftPadded(7))"
        }
        print("call (\(count) objects, one caller)              |  p50 µs |  p99 µs")
        print("-------------------------------------------- | ------- | -------")
        print(line("first call: claim at the daemon, activate", first))
        print(line("to an active object", active))
        print(line("after deactivation: claim, load state", reactivated))
        await client.close()
        await server.close()
        await daemon.close()
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        String(repeating: " ", count: max(0, width - self.count)) + self
    }
}
