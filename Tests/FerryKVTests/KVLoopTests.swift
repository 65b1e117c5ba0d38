import FerryKV
import FerryPosix
import FerryTestSupport
import FerryWire
import NIOCore
import NIOEmbedded
import NIOTLS
import Testing

/// The service's own epoll loops as a client that pipelines sees them: requests sent in one
/// write, or cut anywhere, are each answered once; a client that does not read its answers holds
/// up only itself.
@Suite struct KVLoopTests {
    /// A raw connection that sends frames and reads answers, as a pipelining client does.
    struct RawClient {
        let socket: BlockingSocket
        var received = ByteBuffer()
        var decoder = FrameDecoder()

        init(port: Int) throws {
            self.socket = try BlockingSocket.connect(host: "127.0.0.1", port: port, patience: .eachCall(.seconds(30)))
        }

        func send(_ bytes: ByteBuffer) throws { try Self.send(bytes, on: self.socket) }

        static func send(_ bytes: ByteBuffer, on socket: BlockingSocket) throws {
            try bytes.withUnsafeReadableBytes { bytes throws(PosixError) in try socket.send(bytes) }
        }

        /// The next `count` answers, in the order they came.
        mutating func answers(_ count: Int) throws -> [Frame] {
            var frames: [Frame] = []
            while frames.count < count {
                if let frame = try self.decoder.decode(buffer: &self.received) {
                    frames.append(frame)
                    continue
                }
                self.received.discardReadBytes()
                self.received.reserveCapacity(minimumWritableBytes: 64 << 10)
                let socket = self.socket
                let got = try self.received.withUnsafeMutableWritableBytes { bytes throws(PosixError) in
                    try socket.receiveSome(into: bytes)
                }
                self.received.moveWriterIndex(forwardBy: got)
            }
            return frames
        }
    }

    static func requests<Message: WireMessage>(_ messages: [Message], firstID: UInt64 = 1) -> ByteBuffer {
        var buffer = ByteBuffer()
        for (offset, message) in messages.enumerated() {
            Frame(message, requestID: firstID + UInt64(offset)).write(to: &buffer)
        }
        return buffer
    }

    @Test func pipelinedRequestsAreEachAnsweredOnceAndRequestsCutAnywhereAreRead() async throws {
        let directory = try TemporaryDirectory()
        let server = try await KVServer.bind(path: directory.path + "/kv.sqlite")
        defer { Task { await server.close() } }
        var client = try RawClient(port: server.port)
        defer { client.socket.close() }

        // 500 puts in one write: each durable before its answer, answered once.
        let puts = (0..<500).map { KVWrite(key: "key-\($0)", operation: .put(value: [UInt8($0 % 256)])) }
        try client.send(Self.requests(puts))
        let written = try client.answers(puts.count)
        #expect(Set(written.map(\.header.requestID)) == Set(1...500))
        #expect(try written.allSatisfy { try $0.decode(as: KVWritten.self) == KVWritten(applied: true, version: 1) })

        // 500 gets in one write come back in order, with what the puts stored.
        let gets = (0..<500).map { KVGet(key: "key-\($0)") }
        try client.send(Self.requests(gets, firstID: 1000))
        let values = try client.answers(gets.count)
        #expect(values.map(\.header.requestID) == Array(1000..<1500))
        #expect(try values.enumerated().allSatisfy { try $1.decode(as: KVValue.self).value == [UInt8($0 % 256)] })

        // A get sent a byte at a time is read whole and answered.
        let cut = Self.requests([KVGet(key: "key-7")], firstID: 2000)
        for byte in cut.readableBytesView { try client.send(ByteBuffer(bytes: [byte])) }
        let answer = try #require(try client.answers(1).first)
        #expect(answer.header.requestID == 2000)
        #expect(try answer.decode(as: KVValue.self).value == [7])
    }

    /// FerryWire's `ping`, which the service answers with `pong`.
    struct Ping: WireMessage {
        static let kind = MessageKind.ping
        init() {}
        init(from payload: inout ByteBuffer) {}
        func encode(into payload: inout ByteBuffer) {}
    }

    /// With cluster credentials every connection speaks TLS on the loops: a member's concurrent
    /// puts and a value of many records each way come back whole; a peer without a certificate,
    /// and one with another cluster's, are refused, and the member is still served.
    /// A cluster's credentials, made in `directory`, for `member`.
    static func credentials(in directory: TemporaryDirectory, for member: String) throws -> ClusterCredentials {
        try ClusterAuthority.create(in: directory.path + "/tls", memberName: member)
        return try #require(try ClusterCredentials.load(from: directory.path + "/tls"))
    }

    /// A service that speaks TLS with `credentials`, its file in `directory`.
    static func tlsServer(in directory: TemporaryDirectory, _ credentials: ClusterCredentials) async throws -> KVServer
    {
        try await KVServer.bind(store: try KVStore(path: directory.path + "/kv.sqlite"), credentials: credentials)
    }

    @Test func overTLSAMemberIsServedAndOtherPeersAreRefused() async throws {
        let directory = try TemporaryDirectory()
        let member = try Self.credentials(in: directory, for: "member")
        let intruder = try Self.credentials(in: try TemporaryDirectory(), for: "intruder")
        let server = try await Self.tlsServer(in: directory, member)
        defer { Task { await server.close() } }

        let client = try await WireClient.connect(
            host: "127.0.0.1",
            port: server.port,
            maxPayloadLength: KVLimits.maxPayloadLength,
            credentials: member
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<64 {
                group.addTask {
                    let written = try await client.call(
                        KVWrite(key: "key-\(index)", operation: .put(value: [UInt8(index)]))
                    )
                    #expect(try written.decode(as: KVWritten.self) == KVWritten(applied: true, version: 1))
                }
            }
            try await group.waitForAll()
        }
        for index in [0, 31, 63] {
            let value = try await client.call(KVGet(key: "key-\(index)")).decode(as: KVValue.self)
            #expect(value.value == [UInt8(index)])
        }
        // 1 MiB is 64 TLS records and many reads each way.
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        _ = try await client.call(KVWrite(key: "big", operation: .put(value: big)))
        #expect(try await client.call(KVGet(key: "big")).decode(as: KVValue.self).value == big)

        for (credentials, refusal) in [(nil, "has no cluster credentials"), (intruder, "TLS handshake failed")] {
            let refused = await Result {
                let peer = try await WireClient.connect(host: "127.0.0.1", port: server.port, credentials: credentials)
                defer { Task { await peer.close() } }
                return try await peer.call(Ping(), timeout: .seconds(10)).header.kind
            }
            #expect((try? refused.get()) == nil, "refused: \(refused)")
            #expect("\(refused)".contains(refusal), "\(refused)")
        }
        #expect(try await client.call(Ping()).header.kind == .pong)
        await client.close()
    }

    /// Notes the end of a client's handshake.
    final class HandshakeDone: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var done = false
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .handshakeCompleted? = event as? TLSUserEvent { self.done = true }
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// A member whose last put and close_notify arrive in one read has the put applied, as a
    /// plain client's last put before it closes is.
    @Test func overTLSAPutThatArrivesWithTheClosingAlertIsApplied() async throws {
        let directory = try TemporaryDirectory()
        let member = try Self.credentials(in: directory, for: "member")
        let server = try await Self.tlsServer(in: directory, member)
        defer { Task { await server.close() } }

        // NIOSSL's client, its records carried over a plain socket by hand.
        let socket = try BlockingSocket.connect(host: "127.0.0.1", port: server.port, patience: .eachCall(.seconds(30)))
        defer { socket.close() }
        let client = EmbeddedChannel()
        let handshake = HandshakeDone()
        try client.pipeline.syncOperations.addClientTLS(member)
        try client.pipeline.syncOperations.addHandler(handshake)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        func sendRecords() throws {
            var records = ByteBuffer()
            while var record = try client.readOutbound(as: ByteBuffer.self) { records.writeBuffer(&record) }
            if records.readableBytes > 0 { try RawClient.send(records, on: socket) }
        }
        var received = [UInt8](repeating: 0, count: 16 << 10)
        while !handshake.done {
            try sendRecords()
            let count = try received.withUnsafeMutableBytes { bytes throws(PosixError) in
                try socket.receiveSome(into: bytes)
            }
            try client.writeInbound(ByteBuffer(bytes: received[..<count]))
        }
        try sendRecords()

        client.writeAndFlush(Self.requests([KVWrite(key: "last", operation: .put(value: [9]))]), promise: nil)
        client.close(promise: nil)  // close_notify, after the put's record
        try sendRecords()

        let kv = try await WireClient.connect(host: "127.0.0.1", port: server.port, credentials: member)
        var value: [UInt8]?
        for _ in 0..<500 where value == nil {
            value = try await kv.call(KVGet(key: "last")).decode(as: KVValue.self).value
            if value == nil { try await Task.sleep(for: .milliseconds(20)) }  // its commit may follow this get
        }
        #expect(value == [9])
        await kv.close()
    }

    /// With idle polling (`ferry serve kv --idle-poll-us`) a loop answering one client's requests
    /// back to back polls for the next instead of sleeping between them, and once they stop it
    /// sleeps: an idle service spends no CPU on it. Without, it sleeps after every answer.
    @Test func withIdlePollingALoopWaitsForTheNextRequestAwakeAndSleepsOnceTheyStop() async throws {
        let directory = try TemporaryDirectory()
        // One loop; its thread is the one named ferry-kv-0 that was not there before (other
        // suites' services have theirs), bound again in the rare case that one appeared meanwhile.
        func service(idlePoll: Duration) async throws -> (KVServer, KernelTask) {
            for attempt in 1...3 {
                let before = Set(try KernelTask.all().filter { $0.name == "ferry-kv-0" }.map(\.tid))
                let server = try await KVServer.bind(
                    store: try KVStore(path: directory.path + "/kv-\(idlePoll)-\(attempt).sqlite"),
                    loops: 1,
                    idlePoll: idlePoll,
                    credentials: nil
                )
                let new = try KernelTask.all().filter { $0.name == "ferry-kv-0" && !before.contains($0.tid) }
                if new.count == 1 { return (server, new[0]) }
                await server.close()
            }
            throw TestFailure("another suite's kv service started beside this one's three times")
        }
        // Sleeps of the loop's thread over 400 gets, each sent when the last is answered (alone
        // here 346-390 without polling, none with; fewer without when other suites load the
        // cores, as the next request may come before the loop is back in epoll_wait).
        func sleeps(of loop: KernelTask, serving port: Int) throws -> Int {
            var client = try RawClient(port: port)
            defer { client.socket.close() }
            try client.send(Self.requests([KVGet(key: "warm")]))
            _ = try client.answers(1)
            let before = try loop.sleeps()
            for id in 1...400 {
                try client.send(Self.requests([KVGet(key: "k")], firstID: UInt64(id)))
                _ = try client.answers(1)
            }
            return try loop.sleeps() - before
        }

        let (sleeper, sleeperLoop) = try await service(idlePoll: .zero)
        let slept = try sleeps(of: sleeperLoop, serving: sleeper.port)
        await sleeper.close()
        #expect(slept >= 100, "without idle polling the loop sleeps between requests: \(slept) sleeps in 400")

        let (poller, pollerLoop) = try await service(idlePoll: .milliseconds(5))
        defer { Task { await poller.close() } }
        let polled = try sleeps(of: pollerLoop, serving: poller.port)
        #expect(
            polled * 3 < slept,
            "a request within 5 ms of the last answer is waited for awake: \(polled) sleeps in 400, \(slept) without"
        )

        // Quiet now: past its 5 ms the loop sleeps, and a third of a second costs it no CPU.
        try await Task.sleep(for: .milliseconds(50))
        let cpu = try pollerLoop.cpuNanoseconds()
        try await Task.sleep(for: .milliseconds(300))
        let spent = try pollerLoop.cpuNanoseconds() - cpu
        #expect(spent < 30_000_000, "an idle loop does not poll: \(spent) ns of CPU in 300 ms")
    }

    @Test func aClosedServiceStopsListeningAndItsPortCanBeBoundAgain() async throws {
        let directory = try TemporaryDirectory()
        let server = try await KVServer.bind(path: directory.path + "/kv.sqlite")
        let port = server.port
        await server.close()
        #expect(throws: PosixError.self, "nothing listens after close") {
            try RawClient(port: port).socket.close()
        }
        let again = try await KVServer.bind(path: directory.path + "/kv.sqlite", port: port)
        let kv = try await KVClient.connect(host: "127.0.0.1", port: again.port)
        try await kv.put("after", [1])
        #expect(try await kv.get("after") == [1])
        await kv.close()
        await again.close()
    }

    @Test func aClientThatDoesNotReadItsAnswersHoldsUpOnlyItself() async throws {
        let directory = try TemporaryDirectory()
        let server = try await KVServer.bind(path: directory.path + "/kv.sqlite")
        defer { Task { await server.close() } }
        let kv = try await KVClient.connect(host: "127.0.0.1", port: server.port)
        try await kv.put("big", [UInt8](repeating: 1, count: 64 << 10))

        // 40 MiB of answers asked for, none read yet: far past what the server holds for a client
        // and what the sockets buffer, so the sender blocks until the answers are read.
        var slow = try RawClient(port: server.port)
        defer { slow.socket.close() }
        let count = 640
        let requests = Self.requests(Array(repeating: KVGet(key: "big"), count: count))
        let socket = slow.socket
        let sending = Task.detached { try RawClient.send(requests, on: socket) }

        // Meanwhile other clients are served.
        for round in 0..<20 {
            try await kv.put("other", [UInt8(round)])
            #expect(try await kv.get("other") == [UInt8(round)])
        }

        let answers = try slow.answers(count)
        try await sending.value
        #expect(answers.map(\.header.requestID) == Array(1...UInt64(count)))
        #expect(try answers.allSatisfy { try $0.decode(as: KVValue.self).value?.count == 64 << 10 })
        await kv.close()
    }
}
