import FerryTestSupport
import Foundation
import Testing

@testable import FerryKV

/// The kv store's own write-ahead log: what it replays after a crash, and what it must not.
@Suite struct KVLogTests {
    let directory: TemporaryDirectory
    var path: String { self.directory.path + "/kv.sqlite-log" }

    init() throws { self.directory = try TemporaryDirectory() }

    static func put(_ key: String, _ version: UInt64) -> KVEffect {
        .set(key: key, value: Array("value of \(key)".utf8), version: version)
    }

    @Test func aLogIsMadeAtItsSizeAndReplaysItsRecordsInOrder() throws {
        let log = try KVLog(path: self.path, capacity: 0)
        #expect(try log.recover().isEmpty)
        #expect((try FileManager.default.attributesOfItem(atPath: self.path)[.size] as? Int) == KVLog.minimumCapacity)
        try log.append(log.record([Self.put("a", 1), Self.put("b", 1)]))
        try log.append(log.record([.delete(key: "a"), Self.put("b", 2)]))
        let reopened = try KVLog(path: self.path, capacity: 0)
        #expect(try reopened.recover() == [Self.put("a", 1), Self.put("b", 1), .delete(key: "a"), Self.put("b", 2)])
    }

    /// A crash in the middle of a record's write: the records before it are whole and replayed,
    /// the torn one is not.
    @Test func aTornRecordEndsTheLog() throws {
        let log = try KVLog(path: self.path, capacity: 0)
        _ = try log.recover()
        try log.append(log.record([Self.put("a", 1)]))
        let end = log.offset
        try log.append(log.record([Self.put("b", 1)]))
        // One byte of the second record's payload changes, as a half-written sector would.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: self.path))
        try handle.seek(toOffset: UInt64(end + KVLog.headerSize + 6))
        try handle.write(contentsOf: [0xFF])
        try handle.close()
        #expect(try KVLog(path: self.path, capacity: 0).recover() == [Self.put("a", 1)])
    }

    /// After an emptying, what an older generation left further on is never replayed, even once
    /// a newer, shorter generation has been written over its start, and across reopens.
    @Test func anEmptiedLogNeverReplaysAnOlderGeneration() throws {
        let log = try KVLog(path: self.path, capacity: 0)
        _ = try log.recover()
        for index in 0..<20 { try log.append(log.record([Self.put("old\(index)", 1)])) }
        try log.reset()
        let emptied = try KVLog(path: self.path, capacity: 0)
        #expect(try emptied.recover().isEmpty)
        try emptied.append(emptied.record([Self.put("new", 1)]))
        #expect(try KVLog(path: self.path, capacity: 0).recover() == [Self.put("new", 1)])
    }

    /// A log much smaller than what is written fills and is emptied into the file again and
    /// again, also in the middle of one batch; every write is there after a reopen, and gets agree.
    @Test func aStoreWhoseLogFillsGoesOnAndLosesNothing() async throws {
        let path = self.directory.path + "/kv.sqlite"
        // 300 writes of 64 KiB through a log of about 1 MiB: it fills about every 16 writes.
        func value(_ index: Int) -> [UInt8] {
            Array("\(index)".utf8) + [UInt8](repeating: UInt8(index % 251), count: 65536)
        }
        let store = try KVStore(path: path, logCapacity: 0)
        try await withThrowingTaskGroup(of: Void.self) { writers in
            for writer in 0..<6 {
                writers.addTask {
                    for round in 0..<50 {
                        let index = round * 6 + writer
                        _ = try await store.write(
                            KVWrite(key: "key\(index % 50)", operation: .put(value: value(index)))
                        )
                    }
                }
            }
            try await writers.waitForAll()
        }
        #expect(try store.count() == 50)
        let key7 = try store.getNow("key7")
        #expect(key7.version == 6 && key7.value.map { $0.count == 65536 + 3 } == true)
        try store.close()
        let reopened = try KVStore(path: path, logCapacity: 0)
        #expect(try reopened.getNow("key7") == key7)
        #expect(
            try reopened.listNow(prefix: "key4", limit: 100).entries.map(\.key) == ["key4"]
                + (40..<50).map { "key\($0)" }
        )
        try reopened.close()
    }

    /// A crash in the middle of the first record after an emptying (its header whole, its payload
    /// torn): the next generation is still newer than any before, so records of an older one that
    /// lie further on at the same offsets are never taken for the next one's.
    @Test func aTornFirstRecordDoesNotLetAnOlderGenerationBack() throws {
        func opened() throws -> (KVLog, [KVEffect]) {
            let log = try KVLog(path: self.path, capacity: 0)
            let effects = try log.recover()
            try log.reset()
            return (log, effects)
        }
        let (first, _) = try opened()
        for index in 0..<20 { try first.append(first.record([Self.put("old\(index)", 1)])) }
        let (second, replayed) = try opened()
        #expect(replayed.count == 20)
        try second.append(second.record([Self.put("torn", 2)]))
        // Torn: one byte of its payload never reached the disk.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: self.path))
        try handle.seek(toOffset: UInt64(KVLog.headerSize + 6))
        try handle.write(contentsOf: [0xFF])
        try handle.close()
        let (third, torn) = try opened()
        #expect(torn.isEmpty)
        // A record of the same size as the old ones: the next old one starts where it ends.
        try third.append(third.record([Self.put("new0", 1)]))
        let (_, last) = try opened()
        #expect(last == [Self.put("new0", 1)], "records of an older generation were replayed: \(last.count)")
    }

    /// Acknowledged writes that were only in the log when the store went away (no close, as
    /// after kill -9) are in the file once it opens again: replayed before anything is read.
    @Test func writesOnlyInTheLogAreReplayedAtOpen() async throws {
        let path = self.directory.path + "/kv.sqlite"
        let log = try KVLog(path: path + "-log", capacity: KVStore.logCapacity)
        _ = try log.recover()
        try log.append(log.record([Self.put("a", 3), Self.put("b", 1), .delete(key: "b")]))
        let store = try KVStore(path: path)
        #expect(try store.getNow("a") == KVValue(value: Array("value of a".utf8), version: 3))
        #expect(try store.getNow("b") == KVValue(value: nil, version: 0))
        #expect(try store.count() == 1)
        try store.close()
    }

    /// A store left by a build whose log was smaller (4 MiB before 64) opens at today's size with
    /// every write its log held: the file grows with zeros after the records, never over them.
    @Test func aSmallerLogFromAnEarlierBuildIsReplayedAndGrown() async throws {
        let path = self.directory.path + "/kv.sqlite"
        let log = try KVLog(path: path + "-log", capacity: 4 << 20)
        _ = try log.recover()
        try log.append(log.record([Self.put("a", 1), Self.put("b", 1)]))
        try log.append(log.record([Self.put("a", 2)]))
        let store = try KVStore(path: path)
        #expect(try store.getNow("a") == KVValue(value: Array("value of a".utf8), version: 2))
        #expect(try store.getNow("b") == KVValue(value: Array("value of b".utf8), version: 1))
        #expect((try FileManager.default.attributesOfItem(atPath: path + "-log")[.size] as? Int) == KVStore.logCapacity)
        try store.close()
    }
}
