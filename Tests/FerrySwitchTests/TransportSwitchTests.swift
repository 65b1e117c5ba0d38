import FerryEndpoints
import FerrySwitch
import FerryTestSupport
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// A backend that greets each connection with its name, echoes what it reads, and says `bye`
/// when the client has finished sending.
final class EchoBackend: Sendable {
    let name: String
    let channel: Channel
    var port: Int { self.channel.localAddress!.port! }

    init(name: String, port: Int = 0) async throws {
        self.name = name
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(name: name))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
    }

    func stop() async throws { try await self.channel.close() }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let name: String
        init(name: String) { self.name = name }

        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(string: "\(self.name)\n")), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(data, promise: nil)
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard case .some(.inputClosed) = event as? ChannelEvent else { return }
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(string: "bye\n"))).whenComplete { _ in
                loopBound.value.close(promise: nil)
            }
        }
    }
}

@Suite struct TransportSwitchTests {
    func makeSwitch(_ backends: [Int], policy: BalancePolicy = .roundRobin) throws -> TransportSwitch {
        try TransportSwitch(
            listen: try SwitchListener(ServiceEndpoint(host: "127.0.0.1", port: 0)),
            backends: backends.map { BackendSpec(endpoint: ServiceEndpoint(host: "127.0.0.1", port: $0)) },
            policy: policy,
            healthCheckInterval: nil
        )
    }

    @Test func connectionsGoRoundTheBackendsAndBytesFlowBothWays() async throws {
        var backends: [EchoBackend] = []
        for name in ["a", "b", "c"] { backends.append(try await EchoBackend(name: name)) }
        let relay = try self.makeSwitch(backends.map(\.port))
        defer { relay.stop() }
        var names: [String] = []
        for index in 0..<6 {
            let client = try TestClient(port: relay.address.port)
            names.append(client.line())
            client.send(Array("hello \(index)\n".utf8))
            #expect(client.line() == "hello \(index)")
            client.close()
        }
        #expect(names == ["a", "b", "c", "a", "b", "c"])
        for backend in backends { try await backend.stop() }
    }

    @Test func aFailedConnectIsRetriedOnAnotherBackendWhichLeavesRotation() async throws {
        let dead = try await EchoBackend(name: "dead")
        let deadPort = dead.port
        try await dead.stop()
        let live = try await EchoBackend(name: "live")
        let relay = try self.makeSwitch([deadPort, live.port])
        defer { relay.stop() }
        for _ in 0..<4 {
            let client = try TestClient(port: relay.address.port)
            #expect(client.line() == "live", "no client sees the dead backend")
            client.close()
        }
        let state = relay.balancer.backends
        #expect(state[0].up == false && state[0].failures == 1, "tried once, then out of rotation")

        // A health check brings it back once it answers again.
        let revived = try await EchoBackend(name: "revived", port: deadPort)
        relay.checkHealthNow()
        #expect(relay.balancer.backends[0].up)
        try await revived.stop()
        try await live.stop()
    }

    @Test func eightMebibytesCrossIntactAndAHalfCloseIsPassedOn() async throws {
        let backend = try await EchoBackend(name: "echo")
        let relay = try self.makeSwitch([backend.port])
        defer { relay.stop() }
        let client = try TestClient(port: relay.address.port)
        #expect(client.line() == "echo")
        let payload = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ ($0 >> 13)) }
        let writer = Thread {
            client.send(payload)
            client.finishSending()
        }
        writer.start()
        let echoed = client.receive(payload.count + 4)
        #expect(echoed.count == payload.count + 4)
        #expect(Array(echoed.prefix(payload.count)) == payload)
        #expect(String(decoding: echoed.suffix(4), as: UTF8.self) == "bye\n", "the backend saw the client finish")
        client.close()
        try await backend.stop()
    }

    @Test func exchangesOfWholeMessagesDoNotStall() async throws {
        // Request and answer, turn by turn, as keep-alive HTTP goes: every byte of each message
        // must cross before the other side says anything more, so none may wait for a later edge.
        let backend = try await EchoBackend(name: "echo")
        let relay = try self.makeSwitch([backend.port])
        defer { relay.stop() }
        let client = try TestClient(port: relay.address.port)
        #expect(client.line() == "echo")
        for turn in 0..<40 {
            let message = [UInt8](repeating: UInt8(turn), count: 65536 + turn * 997)
            client.send(message)
            #expect(client.receive(message.count) == message, "turn \(turn)")
        }
        client.close()
        try await backend.stop()
    }

    @Test func aBadBackendAddressIsRefusedClearly() throws {
        #expect(BackendSpec("host:80@0") == nil)
        #expect(BackendSpec("nohostport") == nil)
        #expect(
            BackendSpec("10.0.0.1:80@3")
                == BackendSpec(endpoint: ServiceEndpoint(host: "10.0.0.1", port: 80), weight: 3)
        )
    }
}

@Suite struct BalancerTests {
    static func backends(_ weights: [Int]) -> [BackendSpec] {
        weights.enumerated().map {
            BackendSpec(endpoint: ServiceEndpoint(host: "10.0.0.\($0.offset + 1)", port: 80), weight: $0.element)
        }
    }

    @Test func weightsSetTheShares() {
        let balancer = Balancer(backends: Self.backends([3, 1]), policy: .weighted)
        var counts = [0, 0]
        for _ in 0..<400 {
            let chosen = balancer.pick(client: [])!
            counts[chosen] += 1
            balancer.release(chosen)
        }
        #expect(counts == [300, 100])
    }

    /// `ferry up`'s front: the files backend and three app nodes, requests of the two routes in
    /// turn. One round-robin place for both sent every app request to the same node.
    @Test func roundRobinGoesRoundEachGroupWhenRequestsOfTwoGroupsAlternate() {
        let balancer = Balancer(backends: Self.backends([1, 1, 1, 1]), policy: .roundRobin)
        var app: [Int] = []
        for _ in 0..<6 {
            let picked = balancer.pick(client: [], excluding: [0])!
            app.append(picked)
            balancer.release(picked)
            #expect(balancer.pick(client: [], excluding: [1, 2, 3]) == 0)
            balancer.release(0)
        }
        #expect(app == [1, 2, 3, 1, 2, 3])
    }

    @Test func leastConnectionsPicksTheIdlestBackend() {
        let balancer = Balancer(backends: Self.backends([1, 1, 1]), policy: .leastConnections)
        let first = balancer.pick(client: [])!
        let second = balancer.pick(client: [])!
        #expect(Set([first, second]).count == 2)
        let third = balancer.pick(client: [])!
        #expect(Set([first, second, third]) == [0, 1, 2])
        balancer.release(second)
        #expect(balancer.pick(client: []) == second)
    }

    @Test func aSourceHashKeepsClientsAndMovesOnlyALostBackendsOnes() {
        let balancer = Balancer(backends: Self.backends([1, 1, 1, 1]), policy: .source)
        let clients = (0..<200).map { [UInt8(10), 1, UInt8($0 / 256), UInt8($0 % 256)] }
        let before = clients.map { balancer.pick(client: $0)! }
        #expect(clients.map { balancer.pick(client: $0)! } == before, "the same client, the same backend")
        #expect(Set(before).count == 4, "every backend gets clients")
        balancer.mark(2, up: false)
        let after = clients.map { balancer.pick(client: $0)! }
        for (old, new) in zip(before, after) {
            if old == 2 { #expect(new != 2) } else { #expect(new == old, "clients of the backends still up stay put") }
        }
    }

    @Test func aFullBackendIsSkippedAndNoneUpMeansNoPick() {
        let balancer = Balancer(backends: Self.backends([1, 1]), policy: .roundRobin, maxConnections: 1)
        #expect(balancer.pick(client: []) == 0)
        #expect(balancer.pick(client: []) == 1)
        #expect(balancer.pick(client: []) == nil, "both are at their limit")
        balancer.release(0)
        balancer.mark(0, up: false)
        #expect(balancer.pick(client: []) == nil)
    }
}

@Suite struct BackendOperationsTests {
    @Test func aDrainedBackendTakesNothingNewUntilReady() {
        let balancer = Balancer(backends: BalancerTests.backends([1, 1]), policy: .roundRobin)
        let first = balancer.index(of: "10.0.0.1:80")!
        balancer.setDraining(first, true)
        #expect((0..<6).map { _ in balancer.pick(client: [])! } == [1, 1, 1, 1, 1, 1])
        balancer.setDraining(first, false)
        #expect(Set((0..<4).map { _ in balancer.pick(client: [])! }) == [0, 1])
        #expect(balancer.index(of: "10.9.9.9:80") == nil)
    }

    @Test func aReturningBackendGrowsIntoItsShare() {
        let now = NIOLockedValueBox(ContinuousClock.now)
        let balancer = Balancer(
            backends: BalancerTests.backends([1, 1]),
            policy: .roundRobin,
            slowStart: .seconds(10),
            clock: { now.withLockedValue { $0 } }
        )
        func share(of backend: Int) -> Int {
            (0..<1000).filter { _ in
                let chosen = balancer.pick(client: [])!
                balancer.release(chosen)
                return chosen == backend
            }.count
        }
        balancer.mark(0, up: false)
        balancer.mark(0, up: true)
        let atReturn = share(of: 0)
        now.withLockedValue { $0 += .seconds(5) }
        let halfway = share(of: 0)
        now.withLockedValue { $0 += .seconds(6) }
        let after = share(of: 0)
        #expect(atReturn < 100, "5% of picks at first: \(atReturn) of 1000")
        #expect(halfway > 250 && halfway < 450, "about half its share halfway: \(halfway) of 1000")
        #expect(after == 500, "its full share after the slow start")
    }

    @Test func httpHealthChecksGoByTheStatus() async throws {
        let healthy = NIOLockedValueBox(true)
        let backend = try await ScriptedBackend { request in
            let ok = request.hasPrefix("GET /health ") && healthy.withLockedValue { $0 }
            return .reply(
                ok ? "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" : "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"
            )
        }
        let relay = try TransportSwitch(
            listen: try SwitchListener(ServiceEndpoint(host: "127.0.0.1", port: 0)),
            backends: [BackendSpec(endpoint: ServiceEndpoint(host: "127.0.0.1", port: backend.port))],
            healthCheck: .http(path: "/health"),
            healthCheckInterval: nil
        )
        defer { relay.stop() }
        relay.checkHealthNow()
        #expect(relay.balancer.backends[0].up)
        healthy.withLockedValue { $0 = false }
        relay.checkHealthNow()
        #expect(relay.balancer.backends[0].up == false, "a 503 takes it out, though it accepts connections")
        healthy.withLockedValue { $0 = true }
        relay.checkHealthNow()
        #expect(relay.balancer.backends[0].up)
        #expect(HealthCheck("http:/health") == .http(path: "/health") && HealthCheck("http") == nil)
        try await backend.stop()
    }
}
