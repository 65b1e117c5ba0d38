import FerryExamples
import FerryGuest
import FerryObjects
import FerryPostgres
import FerryTestSupport
import FerryWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing

/// Counts how many invocations run at once across the objects it makes.
final class ConcurrencyProbe: Sendable {
    private let counts = NIOLockedValueBox((running: 0, peak: 0))

    var peak: Int { self.counts.withLockedValue { $0.peak } }

    var type: ObjectType {
        ObjectType(name: "probe") { _, _ in ProbeServant(probe: self) }
    }

    /// Runs one invocation: waits until `want` invocations run together, or `patience` passes
    /// (which is what a policy that serializes them makes happen).
    func overlap(want: Int, patience: Duration) async {
        self.counts.withLockedValue {
            $0.running += 1
            $0.peak = max($0.peak, $0.running)
        }
        let end = ContinuousClock.now + patience
        while self.counts.withLockedValue({ $0.running }) < want, ContinuousClock.now < end {
            try? await Task.sleep(for: .milliseconds(1))
        }
        self.counts.withLockedValue { $0.running -= 1 }
    }
}

final class ProbeServant: ObjectServant {
    let probe: ConcurrencyProbe
    init(probe: ConcurrencyProbe) { self.probe = probe }

    func invoke(_ method: String, arguments: ObjectValue) async throws -> ObjectValue {
        guard case .list(let values) = arguments, case .int(let want)? = values.first else { return .null }
        await self.probe.overlap(want: Int(want), patience: .milliseconds(300))
        return .null
    }
}

func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("ferry-\(name)-\(UUID().uuidString).sqlite").path
}

extension StateBackend {
    /// A new, empty store.
    func open(_ name: String) async throws -> any ObjectStorage {
        switch self {
        case .sqlite: try ObjectStore(path: temporaryPath(name))
        case .postgres:
            try await PostgresObjectStore.open(
                url: try PostgresServer.shared().database(),
                logger: Logger(label: "test")
            )
        }
    }
}

@Suite struct AdapterTests {
    /// Runs `calls` (object id each) at once and returns the peak of invocations running together.
    func peak(_ threading: ObjectPolicy.Threading, objects: [String]) async throws -> Int {
        let probe = ConcurrencyProbe()
        let adapter = try ObjectAdapter(
            name: "probes",
            policy: ObjectPolicy(threading: threading),
            types: [probe.type]
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in objects {
                group.addTask {
                    _ = try await adapter.call(id, method: "overlap", arguments: .list([.int(Int64(objects.count))]))
                }
            }
            try await group.waitForAll()
        }
        return probe.peak
    }

    @Test func perInvocationRunsCallsToOneObjectTogether() async throws {
        #expect(try await self.peak(.perInvocation, objects: ["probe", "probe", "probe"]) == 3)
    }

    @Test func perObjectRunsOneCallPerObjectButObjectsSideBySide() async throws {
        #expect(try await self.peak(.perObject, objects: ["probe", "probe"]) == 1)
        #expect(try await self.peak(.perObject, objects: ["probe/1", "probe/2"]) == 2)
    }

    @Test func singleRunsOneCallAtATimeAcrossTheAdapter() async throws {
        #expect(try await self.peak(.single, objects: ["probe/1", "probe/2"]) == 1)
    }

    @Test(arguments: StateBackend.available)
    func persistentObjectsKeepTheirStateAcrossDeactivation(_ backend: StateBackend) async throws {
        let store = try await backend.open("store")
        let adapter = try ObjectAdapter(
            name: "counters",
            policy: ObjectPolicy(activation: .persistent),
            types: [Counter.type()],
            store: store
        )
        let (first, epoch) = try await adapter.call("counter/a", method: "increment", arguments: .list([.int(5)]))
        #expect(first == .int(5))
        #expect(await adapter.deactivate("counter/a"))
        #expect(adapter.activeCount == 0)
        #expect(try await store.load("counter/a")?.epoch == epoch)
        let (again, newEpoch) = try await adapter.call("counter/a", method: "increment", arguments: .list([.int(1)]))
        #expect(again == .int(6), "reactivated from the store on demand")
        #expect(newEpoch > epoch, "a new activation, a new epoch")
    }

    @Test func aGuestObjectKeepsItsMemoryAcrossDeactivation() async throws {
        let adapter = try ObjectAdapter(
            name: "guests",
            policy: ObjectPolicy(activation: .persistent),
            types: [
                try GuestServant.type(
                    name: "wasm-counter",
                    module: try GuestModule(bytes: CounterGuest.wasm),
                    interface: CounterInterface.definition
                )
            ],
            store: try ObjectStore(path: temporaryPath("guests"))
        )
        let named = ObjectValue.record([ObjectField("by", .int(40))])
        #expect(try await adapter.call("wasm-counter", method: "increment", arguments: named).0 == .int(40))
        #expect(await adapter.deactivate("wasm-counter"))
        #expect(try await adapter.call("wasm-counter", method: "increment", arguments: .list([.int(2)])).0 == .int(42))
        await #expect {
            try await adapter.call("wasm-counter", method: "increment", arguments: .list([.string("2")]))
        } throws: { error in
            (error as? ErrorMessage)?.code == .invalidArgument && "\(error)".contains("'by' must be an integer")
        }
    }

    @Test func aModuleThatDoesNotImplementItsInterfaceIsRefusedBeforeItRuns() throws {
        let other = try ObjectInterface(wit: "interface counter { increment: func(by: s32) -> s32; }")
        #expect {
            try GuestServant.type(name: "bad", module: try GuestModule(bytes: CounterGuest.wasm), interface: other)
        } throws: { error in
            "\(error)".contains("exports increment taking (i64), but 'counter' says (i32)")
        }
        let missing = try ObjectInterface(wit: "interface counter { reset: func(); }")
        #expect(throws: ErrorMessage.self) {
            try GuestServant.type(name: "bad", module: try GuestModule(bytes: CounterGuest.wasm), interface: missing)
        }
    }

    @Test func idleObjectsAreDeactivatedAfterTheIdleTimeout() async throws {
        let adapter = try ObjectAdapter(
            name: "short",
            policy: ObjectPolicy(activation: .transient, idleTimeout: .milliseconds(40)),
            types: [Counter.type()]
        )
        let sweeper = Task { await adapter.sweepIdle() }
        defer { sweeper.cancel() }
        _ = try await adapter.call("counter", method: "increment", arguments: .list([.int(1)]))
        #expect(adapter.activeCount == 1)
        while adapter.activeCount > 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(
            try await adapter.call("counter", method: "get", arguments: .list([])).0 == .int(0),
            "a transient object starts afresh"
        )
    }

    /// Write-through (the default) saves each call's change before answering it; on-deactivate
    /// only when the object goes, so a crash before that loses the change.
    @Test(arguments: ObjectPolicy.Persistence.allCases, ObjectPolicy.Threading.allCases)
    func aWriteThroughObjectsChangeIsStoredWhenItsCallIsAnswered(
        persistence: ObjectPolicy.Persistence,
        threading: ObjectPolicy.Threading
    ) async throws {
        let store = try ObjectStore(path: temporaryPath("write-through"))
        let adapter = try ObjectAdapter(
            name: "counters",
            policy: ObjectPolicy(activation: .persistent, threading: threading, persistence: persistence),
            types: [Counter.type()],
            store: store
        )
        // Concurrent calls: each answered only once a state holding its change is stored, and
        // the last state stored holds them all (saves are stored in the order the states were read).
        try await withThrowingTaskGroup(of: Void.self) { calls in
            for _ in 0..<20 {
                calls.addTask {
                    _ = try await adapter.call("counter/c", method: "increment", arguments: .list([.int(1)]))
                    guard persistence == .writeThrough, let stored = try await store.load("counter/c") else { return }
                    #expect(try await Counter(state: stored.state).get() >= 1)
                }
            }
            try await calls.waitForAll()
        }
        let stored = try await store.load("counter/c")
        if persistence == .writeThrough {
            #expect(try await Counter(state: try #require(stored).state).get() == 20)
        } else {
            #expect(stored == nil, "nothing is saved before the object is deactivated")
        }
    }

    /// Nodes that share one object store may start at the same moment: each opens the new file,
    /// none fails for finding its tables made by another (seen as "table objects already exists").
    @Test func storesOpeningOneNewFileAtOnceAllOpenIt() throws {
        for _ in 0..<10 {
            let path = temporaryPath("together")
            let failures = NIOLockedValueBox<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 4) { _ in
                do {
                    _ = try ObjectStore(path: path)
                } catch {
                    failures.withLockedValue { $0.append("\(error)") }
                }
            }
            #expect(failures.withLockedValue { $0 }.isEmpty, "\(failures.withLockedValue { $0 })")
        }
    }

    @Test func pastTheActiveLimitTheLeastRecentlyUsedObjectIsDeactivated() async throws {
        let store = try ObjectStore(path: temporaryPath("limit"))
        let adapter = try ObjectAdapter(
            name: "small",
            policy: ObjectPolicy(activation: .persistent, maxActive: 2),
            types: [Counter.type()],
            store: store
        )
        for id in ["counter/1", "counter/2", "counter/3"] {
            _ = try await adapter.call(id, method: "increment", arguments: .list([.int(1)]))
        }
        #expect(adapter.activeCount == 2)
        #expect(try await store.load("counter/1") != nil, "counter/1, used least recently, was saved and deactivated")
        #expect(try await adapter.call("counter/1", method: "get", arguments: .list([])).0 == .int(1))
    }

    @Test(arguments: StateBackend.available)
    func aSaveFromAnOlderEpochCannotOverwriteANewerOne(_ backend: StateBackend) async throws {
        let store = try await backend.open("fence")
        try await store.save("counter", type: "counter", state: [2], epoch: 20)
        await #expect {
            try await store.save("counter", type: "counter", state: [1], epoch: 10)
        } throws: { error in
            (error as? ErrorMessage)?.code == .staleEpoch
        }
        #expect(try await store.load("counter")?.state == [2])
    }

    @Test func aPersistentAdapterWithoutAStoreIsRefused() {
        #expect(throws: ErrorMessage.self) {
            try ObjectAdapter(name: "p", policy: ObjectPolicy(activation: .persistent), types: [Counter.type()])
        }
    }
}
