import FerryKV
import FerryPostgres
import FerryTestSupport
import FerryWire
import Logging
import NIOCore
import NIOPosix
import Testing

/// The key-value service over real sockets, on a real SQLite file and, where PostgreSQL is
/// installed, on a real PostgreSQL server: one suite, two backends.
@Suite struct KVServiceTests {
    static let logger: Logger = {
        var logger = Logger(label: "test.kv")
        logger.logLevel = .warning
        return logger
    }()

    /// A new, empty store: a file in a directory of its own, or a database of its own.
    struct Store {
        let address: String
        let directory: TemporaryDirectory?

        init(_ backend: StateBackend) throws {
            switch backend {
            case .sqlite:
                let directory = try TemporaryDirectory()
                self.directory = directory
                self.address = directory.path + "/kv.sqlite"
            case .postgres:
                self.directory = nil
                self.address = try PostgresServer.shared().database()
            }
        }

        func open() async throws -> any KVStorage {
            PostgresDatabase.isURL(self.address)
                ? try await PostgresKVStore.open(url: self.address, logger: KVServiceTests.logger)
                : try KVStore(path: self.address)
        }
    }

    func withService(
        _ store: Store,
        _ body: (KVClient, KVServer) async throws -> Void
    ) async throws {
        let server = try await KVServer.bind(store: try await store.open(), logger: Self.logger)
        let client = try await KVClient.connect(host: "127.0.0.1", port: server.port)
        do {
            try await body(client, server)
        } catch {
            await client.close()
            await server.close()
            throw error
        }
        await client.close()
        await server.close()
    }

    func withService(_ backend: StateBackend, _ body: (KVClient, KVServer) async throws -> Void) async throws {
        try await self.withService(try Store(backend), body)
    }

    @Test(arguments: StateBackend.available) func putGetDeleteAndVersions(_ backend: StateBackend) async throws {
        try await self.withService(backend) { kv, _ async throws in
            #expect(try await kv.get("greeting") == nil)
            #expect(try await kv.put("greeting", Array("hello".utf8)).version == 1)
            #expect(try await kv.put("greeting", Array("hi".utf8)).version == 2)
            #expect(try await kv.get("greeting") == Array("hi".utf8))
            #expect(try await kv.delete("greeting").applied)
            #expect(try await kv.get("greeting") == nil)
            #expect(try await kv.delete("greeting").applied == false, "deleting a missing key applies nothing")
        }
    }

    @Test(arguments: StateBackend.available) func compareAndSetAppliesOnlyOverTheExpectedValue(
        _ backend: StateBackend
    ) async throws {
        try await self.withService(backend) { kv, _ async throws in
            #expect(try await kv.compareAndSet("lock", expected: nil, value: [1]).applied, "absent → created")
            #expect(try await kv.compareAndSet("lock", expected: nil, value: [2]).applied == false)
            #expect(try await kv.compareAndSet("lock", expected: [9], value: [2]).applied == false)
            let swapped = try await kv.compareAndSet("lock", expected: [1], value: [2])
            #expect(swapped.applied && swapped.version == 2)
            #expect(try await kv.get("lock") == [2])
        }
    }

    @Test(arguments: StateBackend.available) func concurrentCompareAndSetsLetExactlyOneWin(
        _ backend: StateBackend
    ) async throws {
        try await self.withService(backend) { kv, _ async throws in
            try await kv.put("counter", [0])
            // 16 clients race to move 0 → their own id; the group commit batches them into one
            // transaction, which must still apply them one after the other.
            let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
                for id in 1...16 {
                    group.addTask { try await kv.compareAndSet("counter", expected: [0], value: [UInt8(id)]).applied }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(winners == 1)
        }
    }

    @Test(arguments: StateBackend.available) func listReturnsKeysByPrefixInOrderWithinTheLimit(
        _ backend: StateBackend
    ) async throws {
        try await self.withService(backend) { kv, _ async throws in
            for key in ["user/2", "user/1", "users", "team/1", "user/3"] { try await kv.put(key, Array(key.utf8)) }
            let users = try await kv.list(prefix: "user/")
            #expect(users.entries.map(\.key) == ["user/1", "user/2", "user/3"])
            #expect(users.truncated == false)
            let two = try await kv.list(prefix: "user", limit: 2)
            #expect(two.entries.map(\.key) == ["user/1", "user/2"])
            #expect(two.truncated)
        }
    }

    @Test(arguments: StateBackend.available) func acknowledgedWritesSurviveAReopen(_ backend: StateBackend) async throws
    {
        let store = try Store(backend)
        try await self.withService(store) { kv, _ async throws in
            for index in 0..<100 { try await kv.put("key\(index)", Array("value\(index)".utf8)) }
        }
        try await self.withService(store) { kv, _ async throws in
            #expect(try await kv.list(prefix: "key", limit: 1000).entries.count == 100)
            #expect(try await kv.get("key42") == Array("value42".utf8))
        }
    }

    @Test(arguments: StateBackend.available) func oversizedKeysAndValuesAreRefusedAndTheConnectionCarriesOn(
        _ backend: StateBackend
    ) async throws {
        try await self.withService(backend) { kv, _ async throws in
            let longKey = String(repeating: "k", count: KVLimits.maxKeyBytes + 1)
            for attempt in [
                { _ = try await kv.put(longKey, [1]) },
                { _ = try await kv.get(longKey) },
                { _ = try await kv.put("big", [UInt8](repeating: 0, count: KVLimits.maxValueBytes + 1)) },
            ] as [() async throws -> Void] {
                do {
                    try await attempt()
                    Issue.record("an oversized request was accepted")
                } catch let error as ErrorMessage {
                    #expect(error.code == .tooLarge, "\(error)")
                }
            }
            await #expect(throws: ErrorMessage.self) { try await kv.put("", [1]) }
            #expect(try await kv.get("big") == nil, "nothing of a refused write is stored")
            try await kv.put("after", [1])
            #expect(try await kv.get("after") == [1])
        }
    }

    struct UnknownMessage: WireMessage {
        static let kind = MessageKind(rawValue: 0x7D)
        init() {}
        init(from payload: inout ByteBuffer) throws {}
        func encode(into payload: inout ByteBuffer) {}
    }

    /// A put whose value claims more bytes than the frame holds.
    struct TruncatedPut: WireMessage {
        static let kind = MessageKind.kvWrite
        init() {}
        init(from payload: inout ByteBuffer) throws {}
        func encode(into payload: inout ByteBuffer) {
            payload.writeWireString("key")
            payload.writeInteger(UInt8(1))
            payload.writeInteger(UInt32(1000))
            payload.writeBytes([1, 2, 3])
        }
    }

    @Test(arguments: StateBackend.available) func truncatedAndUnknownFramesGetErrorsAndGarbageClosesOnlyItsConnection(
        _ backend: StateBackend
    ) async throws {
        try await self.withService(backend) { kv, server async throws in
            let wire = try await WireClient.connect(host: "127.0.0.1", port: server.port)
            #expect(try await wire.call(UnknownMessage()).decode(as: ErrorMessage.self).code == .unknownKind)
            let truncated = try await wire.call(TruncatedPut()).decode(as: ErrorMessage.self)
            #expect(truncated.code == .malformed)
            #expect(truncated.message.contains("value"))
            #expect(try await kv.get("key") == nil)

            let garbage = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: server.port).get()
            try await garbage.writeAndFlush(ByteBuffer(bytes: [UInt8](repeating: 0xFF, count: 64)))
            try await garbage.closeFuture.get()

            // Other connections, and the first one, are served as before.
            try await kv.put("key", [7])
            #expect(try await wire.call(KVGet(key: "key")).decode(as: KVValue.self).value == [7])
            await wire.close()
        }
    }

    /// The setting behind durability; FerryProcessTests watches the syncs themselves.
    @Test func theWriterRunsWithSynchronousFull() async throws {
        let directory = try TemporaryDirectory()
        let store = try KVStore(path: directory.path + "/kv.sqlite")
        #expect(try store.synchronousSetting == 2, "PRAGMA synchronous must be FULL on the writer")
        try store.close()
    }

    /// Gets come from memory, which must hold exactly what the file does: a second store on the
    /// same file would write past it, so it is refused until the first is closed.
    @Test func oneStoreOwnsItsFile() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/kv.sqlite"
        let first = try KVStore(path: path)
        do {
            _ = try KVStore(path: path)
            Issue.record("a second store opened a file another store has open")
        } catch {
            #expect("\(error)".contains("another store has it open"))
        }
        _ = try await first.write(KVWrite(key: "k", operation: .put(value: [1])))
        try first.close()
        let second = try KVStore(path: path)
        #expect(try second.getNow("k") == KVValue(value: [1], version: 1), "what the file holds is loaded at open")
        try second.close()
    }

    /// Every kind of write has the same outcome and shows in the next get, the way the file has it
    /// after a reopen: from memory through the log, and (past the memory limit) from the file.
    @Test(arguments: [KVStore.mirrorLimit, 0]) func getsAgreeWithTheFile(mirrorLimit: Int) async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/kv.sqlite"
        let store = try KVStore(path: path, mirrorLimit: mirrorLimit)
        let writes: [(KVWrite, KVWritten)] = [
            (KVWrite(key: "a", operation: .put(value: [1])), KVWritten(applied: true, version: 1)),
            (KVWrite(key: "a", operation: .put(value: [2])), KVWritten(applied: true, version: 2)),
            (KVWrite(key: "b", operation: .put(value: [3])), KVWritten(applied: true, version: 1)),
            (KVWrite(key: "b", operation: .delete), KVWritten(applied: true, version: 0)),
            (KVWrite(key: "b", operation: .delete), KVWritten(applied: false, version: 0)),
            (
                KVWrite(key: "c", operation: .compareAndSet(expected: nil, value: [4])),
                KVWritten(applied: true, version: 1)
            ),
            (
                KVWrite(key: "c", operation: .compareAndSet(expected: [9], value: [5])),
                KVWritten(applied: false, version: 1)
            ),
        ]
        for (write, outcome) in writes {
            #expect(try await store.write(write) == outcome, "\(write.key) \(write.operation)")
        }
        let keys = ["a", "b", "c", "never"]
        let read = try keys.map { try store.getNow($0) }
        #expect(
            read == [
                .init(value: [2], version: 2), .init(value: nil, version: 0), .init(value: [4], version: 1),
                .init(value: nil, version: 0),
            ]
        )
        try store.close()
        let reopened = try KVStore(path: path, mirrorLimit: mirrorLimit)
        #expect(try keys.map { try reopened.getNow($0) } == read)
        try reopened.close()
    }

    @Test func aStoreThatCannotOpenSaysWhere() async throws {
        do {
            _ = try KVStore(path: "/nonexistent-dir/ferry/kv.sqlite")
            Issue.record("opened a store in a missing directory")
        } catch {
            #expect("\(error)".contains("/nonexistent-dir/ferry/kv.sqlite"))
        }
    }
}
