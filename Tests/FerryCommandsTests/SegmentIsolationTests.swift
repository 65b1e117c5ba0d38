import FerryClient
import FerryExamples
import FerryObjects
import FerryTestSupport
import FerryWire
import Foundation
import Logging
import Testing

/// Objects with `segment` isolation run in processes of their own (`ferry objects segment`),
/// so these tests need the built `ferry` executable.
@Suite struct SegmentIsolationTests {
    @Test func aSegmentObjectThatCrashesTakesNothingElseDown() async throws {
        let ferry = try FerryProcess.executable()
        let launcher = SegmentLauncher(executable: ferry.path, arguments: ["objects", "segment", "--type", "counter"])
        let isolatedAdapter = try ObjectAdapter(
            name: "isolated",
            policy: ObjectPolicy(isolation: .segment),
            types: [Counter.type(segmentLauncher: launcher)]
        )
        let sharedAdapter = try ObjectAdapter(
            name: "shared",
            policy: ObjectPolicy(),
            types: [Counter.type(name: "local")]
        )
        let server = try await ObjectServer.bind(
            adapters: [isolatedAdapter, sharedAdapter],
            logger: Logger(label: "test")
        )
        let client = ObjectClient(node: server.node)
        let isolated = CounterStub(client.reference("counter", deadline: .seconds(90)))
        let local = CounterStub(client.reference("local", deadline: .seconds(90)))
        #expect(try await isolated.increment(by: 2) == 2)
        #expect(try await local.increment(by: 1) == 1)
        let pid = try #require(isolatedAdapter.segmentProcessID(of: "counter"))
        #expect(pid != getpid(), "the object runs in a process of its own")

        kill(pid, SIGKILL)
        await #expect {
            try await isolated.increment(by: 1)
        } throws: { error in
            (error as? ErrorMessage)?.code == .segmentFailed && "\(error)".contains("died of signal 9")
                && "\(error)".contains("the next call starts a new process")
        }
        #expect(try await local.increment(by: 1) == 2, "the node and its other objects carry on")
        #expect(try await isolated.increment(by: 5) == 5, "a new segment, whose state died with the old one")
        let restarted = try #require(isolatedAdapter.segmentProcessID(of: "counter"))
        #expect(restarted != pid)

        await client.close()
        await server.close()
        #expect(kill(restarted, 0) != 0, "closing the node stops its segments")
    }

    @Test func aPersistentSegmentObjectKeepsItsStateAcrossDeactivation() async throws {
        let ferry = try FerryProcess.executable()
        let launcher = SegmentLauncher(executable: ferry.path, arguments: ["objects", "segment", "--type", "counter"])
        let temporary = try TemporaryDirectory()
        defer { withExtendedLifetime(temporary) {} }  // removed at the end of the test
        let store = try ObjectStore(path: temporary.path + "/segment.sqlite")
        let adapter = try ObjectAdapter(
            name: "isolated",
            policy: ObjectPolicy(activation: .persistent, isolation: .segment),
            types: [Counter.type(segmentLauncher: launcher)],
            store: store
        )
        #expect(try await adapter.call("counter", method: "increment", arguments: .list([.int(4)])).0 == .int(4))
        #expect(await adapter.deactivate("counter"))
        #expect(try await adapter.call("counter", method: "increment", arguments: .list([.int(1)])).0 == .int(5))
        await adapter.deactivateAll()
    }
}
