import FerryClient
import FerryEndpoints
import FerryExamples
import FerryObjects
import FerryWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// A servant whose `block` runs until the test opens it, to hold a gate.
final class Blocker: ObjectServant {
    let opened = AsyncStream<Void>.makeStream()

    func invoke(_ method: String, arguments: ObjectValue) async throws -> ObjectValue {
        for await _ in self.opened.stream {}
        return .null
    }
}

@Suite struct ObjectServerTests {
    static func serve(_ adapters: [ObjectAdapter]) async throws -> ObjectServer {
        try await ObjectServer.bind(adapters: adapters, logger: Logger(label: "test"))
    }

    static func call(
        _ wire: WireClient,
        _ object: String,
        _ method: String,
        _ arguments: ObjectValue,
        epoch: UInt64 = 0,
        callID: CallID = CallID(client: 1, sequence: UInt64.random(in: 1...UInt64.max))
    ) async throws -> ObjectResult {
        let call = ObjectCall(
            object: object,
            method: method,
            epoch: epoch,
            callID: callID,
            // Room for a parallel `swift test`, whose start starves the pool for seconds.
            deadlineMilliseconds: 60_000,
            arguments: arguments
        )
        return try await wire.call(call, timeout: .seconds(60)).decode(as: ObjectResult.self)
    }

    /// A servant that answers whether its call runs on an event loop's thread.
    final class WhereAmI: ObjectServant {
        func invoke(_ method: String, arguments: ObjectValue) async throws -> ObjectValue {
            .bool(MultiThreadedEventLoopGroup.currentEventLoop != nil)
        }
    }

    @Test func onlyTypesThatAskForItRunOnTheConnectionsEventLoop() async throws {
        let server = try await Self.serve([
            try ObjectAdapter(
                name: "probes",
                policy: ObjectPolicy(),
                types: [
                    ObjectType(name: "looped", runsOnEventLoop: true) { _, _ in WhereAmI() },
                    ObjectType(name: "pooled") { _, _ in WhereAmI() },
                ]
            )
        ])
        let wire = try await WireClient.connect(host: server.host, port: server.port)
        func onEventLoop(_ object: String) async throws -> ObjectValue? {
            guard case .value(let value, _) = try await Self.call(wire, object, "where", .list([])).outcome else {
                return nil
            }
            return value
        }
        for _ in 0..<3 {
            #expect(try await onEventLoop("looped") == .bool(true))
            #expect(try await onEventLoop("pooled") == .bool(false), "a type that may block never holds up the loop")
        }
        await wire.close()
        await server.close()
    }

    @Test func aGeneratedStubCallsARemoteObjectLikeALocalOne() async throws {
        let server = try await Self.serve([
            try ObjectAdapter(name: "counters", policy: ObjectPolicy(), types: [Counter.type()])
        ])
        let client = ObjectClient(node: server.node)
        let counter = CounterStub(client.reference("counter", deadline: .seconds(90)))
        #expect(try await counter.increment(by: 2) == 2)
        #expect(try await counter.increment(by: 3) == 5)
        #expect(try await counter.get() == 5)
        #expect(client.binding(of: "counter")?.epoch ?? 0 > 0, "the reference is bound to the activation's epoch")
        await client.close()
        await server.close()
    }

    @Test func callersOnTheClientsEventLoopAreAnsweredThere() async throws {
        let server = try await Self.serve([
            try ObjectAdapter(name: "counters", policy: ObjectPolicy(), types: [Counter.type()])
        ])
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let client = ObjectClient(node: server.node, eventLoop: loop)
        let counter = CounterStub(client.reference("counter", deadline: .seconds(90)))
        // Callers that send on the connection's own loop (no trip to it) and resume there.
        try await withTaskExecutorPreference(EventLoopTaskExecutor(loop)) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        for _ in 0..<5 {
                            _ = try await counter.increment(by: 1)
                            #expect(loop.inEventLoop, "a caller that prefers the loop resumes on it")
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        #expect(try await counter.get() == 20, "every call ran once")
        await client.close()
        await server.close()
    }

    @Test func badCallsGetClearErrorsAndTheConnectionAndNodeCarryOn() async throws {
        let server = try await Self.serve([
            try ObjectAdapter(name: "counters", policy: ObjectPolicy(), types: [Counter.type()])
        ])
        let wire = try await WireClient.connect(host: server.host, port: server.port)
        func refusal(
            _ object: String,
            _ method: String,
            _ arguments: ObjectValue,
            epoch: UInt64 = 0
        ) async -> ErrorMessage? {
            do {
                _ = try await Self.call(wire, object, method, arguments, epoch: epoch)
                return nil
            } catch {
                return error as? ErrorMessage
            }
        }
        let unknownObject = await refusal("nobody", "get", .list([]))
        #expect(unknownObject?.code == .notFound)
        #expect(unknownObject?.message.contains("this node hosts objects of type counter") == true)
        let unknownMethod = await refusal("counter", "reset", .list([]))
        #expect(unknownMethod?.code == .noSuchMethod)
        #expect(unknownMethod?.message.contains("it has increment, get") == true)
        let wrongType = await refusal("counter", "increment", .record([ObjectField("by", .string("two"))]))
        #expect(wrongType?.code == .invalidArgument)
        #expect(wrongType?.message == "'by' must be an integer, got the string \"two\"")
        let oversized = await refusal("counter", "increment", .bytes([UInt8](repeating: 0, count: 100_000)))
        #expect(oversized?.code == .tooLarge)
        guard case .value(_, let epoch) = try await Self.call(wire, "counter", "get", .list([])).outcome else {
            Issue.record("get answered with a forward")
            return
        }
        let stale = await refusal("counter", "increment", .list([.int(1)]), epoch: epoch - 1)
        #expect(stale?.code == .staleEpoch)
        #expect(stale?.message.contains("look the name up again") == true)
        #expect(
            try await Self.call(wire, "counter", "get", .list([])).outcome == .value(.int(0), epoch: epoch),
            "nothing was run by the bad calls, and the connection still serves"
        )

        // Bytes that are not FerryWire close that one connection; others are untouched.
        let raw = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: server.host, port: server.port).get()
        try await raw.writeAndFlush(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: ferry\r\n\r\n"))
        try await raw.closeFuture.get()
        #expect(
            try await Self.call(wire, "counter", "increment", .list([.int(1)])).outcome == .value(.int(1), epoch: epoch)
        )
        await wire.close()
        await server.close()
    }

    @Test func aRetriedCallRunsOnceAndGetsTheFirstAnswer() async throws {
        let server = try await Self.serve([
            try ObjectAdapter(name: "counters", policy: ObjectPolicy(), types: [Counter.type()])
        ])
        let wire = try await WireClient.connect(host: server.host, port: server.port)
        let id = CallID(client: 77, sequence: 1)
        let first = try await Self.call(wire, "counter", "increment", .list([.int(5)]), callID: id)
        let second = try await Self.call(wire, "counter", "increment", .list([.int(5)]), callID: id)
        #expect(first == second)
        guard case .value(let value, _) = try await Self.call(wire, "counter", "get", .list([])).outcome else {
            Issue.record("no value")
            return
        }
        #expect(value == .int(5), "the repeat was answered from the ledger, not run again")
        await wire.close()
        await server.close()
    }

    @Test func aCallThatCannotStartBeforeItsDeadlineIsNotRun() async throws {
        let blocker = Blocker()
        let server = try await Self.serve([
            try ObjectAdapter(
                name: "one-thread",
                policy: ObjectPolicy(threading: .single),
                types: [Counter.type(), ObjectType(name: "blocker") { _, _ in blocker }]
            )
        ])
        let wire = try await WireClient.connect(host: server.host, port: server.port)
        let holding = Task { try await Self.call(wire, "blocker", "block", .list([])) }
        // The counter's call waits for the one thread behind `block`, past its 30 ms deadline.
        // The wait is counted from when the call is made: a task started at a busy moment (a
        // parallel `swift test` starves the pool at first) may start after a fixed wait is over.
        let (made, madeSignal) = AsyncStream<Void>.makeStream()
        let late = Task {
            madeSignal.yield()
            return try await wire.call(
                ObjectCall(
                    object: "counter",
                    method: "increment",
                    callID: CallID(client: 2, sequence: 1),
                    deadlineMilliseconds: 30,
                    arguments: .list([.int(1)])
                )
            ).decode(as: ObjectResult.self)
        }
        for await _ in made { break }
        try await Task.sleep(for: .milliseconds(200))
        blocker.opened.continuation.finish()
        _ = try await holding.value
        await #expect {
            try await late.value
        } throws: { error in
            (error as? ErrorMessage)?.code == .deadlineExceeded
        }
        #expect(try await Self.call(wire, "counter", "get", .list([])).outcome.value == .int(0))
        await wire.close()
        await server.close()
    }
}

extension ObjectResult.Outcome {
    var value: ObjectValue? {
        if case .value(let value, _) = self { value } else { nil }
    }
}
