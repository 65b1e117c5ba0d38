// ferry-bench: one closed-loop load generator for Ferry's services and their anchors, so both
// sides of a ratio are driven by the same code.
//
//   ferry-bench kv --target ferry|redis --addr HOST:PORT --op put|get --clients N --seconds S
//                  [--value-size BYTES] [--keys N]
//   ferry-bench endpoints --addr HOST:PORT|etcd://HOST:PORT,... --name NAME --op lookup|register
//                  --clients N --seconds S   (the registry: the endpoint daemon or etcd)
//   ferry-bench guest [--guests DIR] [--mib N] [--repeats N]   (FerryGuest costs; see GuestBenchmark)
//   ferry-bench cache-backend [--port 0] [--capacity N] [--miss-ms MS]   (a caching HTTP backend; see CacheBackend)
//   ferry-bench bare-nio [--port 0] [--size BYTES]   (SwiftNIO's least per connection; see BareNIOServer)
//   ferry-bench objects serve|load|policies|activation   (object calls; see ObjectsBenchmark)
//   ferry-bench migration --endpoints HOST:PORT --key KEYFILE ...   (process moves; see MigrationBenchmark)
//   ferry-bench pages --guests DIR ...                              (what tracking written pages costs)
//   ferry-bench live-migration --endpoints HOST:PORT --key KEYFILE ...  (Clark's table; see LiveMigrationBenchmark)
//   ferry-bench federated-split --data FILE --split SPLIT --seed N --nodes N   (ferry learn's split, as JSON)
//
// Each client has its own connection and one request outstanding. Prints one line:
//   ops=<count> seconds=<s> ops_per_s=<r> p50_us=<µs> p99_us=<µs> errors=<n>
//
// FerryWire connections use the cluster credentials `ferry` would (FERRY_CREDENTIALS, else
// FERRY_DATA_DIR's, else ~/.ferry's); Benchmarks/lib.sh sets FERRY_CREDENTIALS empty (plain TCP)
// unless a script measures TLS.
import FerryEndpoints
import FerryKV
import FerryPosix
import FerryServer
import FerryWire
import Foundation
import Logging
import NIOCore
import NIOPosix

do {
    try WireSecurity.bootstrap(explicit: nil)
} catch {
    FileHandle.standardError.write(Data("ferry-bench: \(error)\n".utf8))
    exit(2)
}

struct Options {
    var command = "kv"
    var name = "bench"
    var target = "ferry"
    var host = "127.0.0.1"
    var port = 0
    var op = "put"
    var clients = 1
    var seconds = 5.0
    var valueSize = 100
    var keys = 10_000
    /// For `endpoints`: the daemon at --addr, or etcd when --addr is `etcd://...`.
    var registry: RegistryAddress?

    init(_ arguments: [String]) throws {
        var rest = arguments.dropFirst()
        guard let command = rest.first, ["kv", "endpoints"].contains(command) else {
            throw Failure("usage: ferry-bench kv|endpoints --addr HOST:PORT ... | ferry-bench guest ...")
        }
        self.command = command
        rest = rest.dropFirst()
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else { throw Failure("\(flag) needs a value") }
            switch flag {
            case "--target": self.target = value
            case "--addr" where value.hasPrefix("etcd://"):
                guard let registry = RegistryAddress(value) else {
                    throw Failure("--addr: \(RegistryAddress.expected)")
                }
                self.registry = registry
            case "--addr":
                guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]) else {
                    throw Failure("--addr must be HOST:PORT, got \(value)")
                }
                self.host = String(value[..<colon])
                self.port = port
            case "--op": self.op = value
            case "--clients": self.clients = Int(value) ?? 1
            case "--seconds": self.seconds = Double(value) ?? 5
            case "--value-size": self.valueSize = Int(value) ?? 100
            case "--keys": self.keys = Int(value) ?? 10_000
            case "--name": self.name = value
            default: throw Failure("unknown option \(flag)")
            }
        }
        if self.command == "endpoints" {
            if self.registry == nil { self.registry = .daemon(ServiceEndpoint(host: self.host, port: self.port)) }
            if self.op == "put" { self.op = "lookup" }  // the default op is kv's
            guard ["lookup", "register"].contains(self.op) else { throw Failure("endpoints: --op lookup or register") }
        } else {
            guard ["ferry", "redis"].contains(self.target), ["put", "get"].contains(self.op) else {
                throw Failure("--target takes ferry or redis, --op put or get")
            }
        }
    }
}

struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One connection that can put and get.
protocol KVConnection {
    func put(_ key: String, _ value: [UInt8]) async throws
    func get(_ key: String) async throws
    func close() async
}

/// The registry through the same loop: every operation looks one name up (`get`), or registers
/// this client's own name again (`put`: on the daemon it replaces the last registration, on etcd
/// it grants a lease, reads the name, commits, and revokes the lease it replaced).
struct RegistryConnection: KVConnection {
    let client: any Registry
    let name: String
    let endpoint: ServiceEndpoint

    func put(_ key: String, _ value: [UInt8]) async throws {
        _ = try await self.client.register(
            "\(self.name)-\(self.endpoint.port)",
            endpoints: [self.endpoint],
            metadata: [:],
            ttl: .seconds(60)
        )
    }
    func get(_ key: String) async throws { _ = try await self.client.lookup(self.name) }
    func close() async { await self.client.close() }
}

extension KVClient: KVConnection {
    func put(_ key: String, _ value: [UInt8]) async throws {
        _ = try await self.put(key, value) as KVWritten
    }
    func get(_ key: String) async throws {
        _ = try await self.get(key) as [UInt8]?
    }
}

/// A minimal RESP client: SET and GET, one outstanding request.
final class RedisConnection: KVConnection {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    var pending = ByteBuffer()

    init(host: String, port: Int) async throws {
        self.channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        self.iterator = self.channel.inbound.makeAsyncIterator()
    }

    private func command(_ parts: [[UInt8]]) async throws {
        var buffer = ByteBuffer()
        buffer.writeString("*\(parts.count)\r\n")
        for part in parts {
            buffer.writeString("$\(part.count)\r\n")
            buffer.writeBytes(part)
            buffer.writeString("\r\n")
        }
        try await self.channel.outbound.write(buffer)
        // Read one reply: +OK, $-1, or $N\r\n<N bytes>\r\n.
        while true {
            if let length = Self.replyLength(self.pending) {
                self.pending.moveReaderIndex(forwardBy: length)
                self.pending.discardReadBytes()
                return
            }
            guard var more = try await self.iterator.next() else { throw Failure("redis closed the connection") }
            self.pending.writeBuffer(&more)
        }
    }

    private static func replyLength(_ buffer: ByteBuffer) -> Int? {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let lineLength = newline - view.startIndex + 1
        guard view.first == UInt8(ascii: "$") else { return lineLength }
        let header = String(decoding: view[view.startIndex + 1..<newline - 1], as: UTF8.self)
        guard let count = Int(header), count >= 0 else { return lineLength }
        let total = lineLength + count + 2
        return view.count >= total ? total : nil
    }

    func put(_ key: String, _ value: [UInt8]) async throws {
        try await self.command([Array("SET".utf8), Array(key.utf8), value])
    }

    func get(_ key: String) async throws {
        try await self.command([Array("GET".utf8), Array(key.utf8)])
    }

    func close() async {
        self.channel.outbound.finish()
        try? await self.channel.channel.close()
    }
}

if let command = CommandLine.arguments.dropFirst().first, ["objects", "migration", "live-migration"].contains(command) {
    do {
        let rest = Array(CommandLine.arguments.dropFirst(2))
        switch command {
        case "objects": try await ObjectsBenchmark.run(rest)
        case "migration": try await MigrationBenchmark.run(rest)
        default: try await LiveMigrationBenchmark.run(rest)
        }
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("ferry-bench: \(error)\n".utf8))
        exit(2)
    }
}

if let command = CommandLine.arguments.dropFirst().first, ["pages", "federated-split"].contains(command) {
    do {
        if command == "pages" {
            try PagesBenchmark.run(Array(CommandLine.arguments.dropFirst(2)))
        } else {
            try FederatedSplitDump.run(Array(CommandLine.arguments.dropFirst(2)))
        }
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("ferry-bench: \(error)\n".utf8))
        exit(2)
    }
}

if let command = CommandLine.arguments.dropFirst().first, ["guest", "cache-backend", "bare-nio"].contains(command) {
    do {
        let arguments = Array(CommandLine.arguments.dropFirst(2))
        switch command {
        case "guest": try GuestBenchmark.run(arguments)
        case "cache-backend": try CacheBackend.run(arguments)
        default: try BareNIOServer.run(arguments)
        }
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("ferry-bench: \(error)\n".utf8))
        exit(2)
    }
}

let options: Options
do {
    options = try Options(CommandLine.arguments)
} catch {
    FileHandle.standardError.write(Data("ferry-bench: \(error)\n".utf8))
    exit(2)
}

let value = [UInt8](repeating: UInt8(ascii: "v"), count: options.valueSize)
let deadline = ContinuousClock.now + .milliseconds(Int64(options.seconds * 1000))
let started = ContinuousClock.now

struct ClientResult: Sendable {
    var latencies: [Duration] = []
    var errors = 0
}

let results = try await withThrowingTaskGroup(of: ClientResult.self) { group in
    for client in 0..<options.clients {
        group.addTask {
            let connection: any KVConnection
            if options.command == "endpoints" {
                connection = RegistryConnection(
                    client: try await options.registry!.connect(logger: Logger(label: "ferry-bench")),
                    name: options.name,
                    endpoint: ServiceEndpoint(host: "127.0.0.1", port: 10_000 + client)
                )
            } else if options.target == "ferry" {
                connection = try await KVClient.connect(host: options.host, port: options.port)
            } else {
                connection = try await RedisConnection(host: options.host, port: options.port)
            }
            var result = ClientResult()
            var index = client
            while ContinuousClock.now < deadline {
                let key = "bench:\(index % options.keys)"
                index += options.clients
                let start = ContinuousClock.now
                do {
                    if options.op == "put" || options.op == "register" {
                        try await connection.put(key, value)
                    } else {
                        try await connection.get(key)
                    }
                    result.latencies.append(ContinuousClock.now - start)
                } catch {
                    result.errors += 1
                    if result.errors > 100 { break }
                }
            }
            await connection.close()
            return result
        }
    }
    var all: [ClientResult] = []
    for try await result in group { all.append(result) }
    return all
}
let elapsed = ContinuousClock.now - started
let seconds = elapsed.inSeconds
let latencies = results.flatMap(\.latencies).sorted()
func percentile(_ p: Double) -> Int {
    guard !latencies.isEmpty else { return 0 }
    let sample = latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
    return Int(sample.wholeMicroseconds)
}
print(
    "ops=\(latencies.count) seconds=\(String(format: "%.2f", seconds)) ops_per_s=\(String(format: "%.0f", Double(latencies.count) / seconds)) p50_us=\(percentile(0.5)) p99_us=\(percentile(0.99)) errors=\(results.map(\.errors).reduce(0, +))"
)
