import FerryGuest
import FerryKV
import FerryServer
import Foundation
import NIOConcurrencyHelpers

/// What a node lends every guest it runs: its name and a key space of its own
/// (`ferry.local_get/put`), kept in `DATA/local.sqlite` when the node has a data directory. A
/// guest is bound to these by type: after a move it sees the new node's.
final class NodeLocalSpace: GuestNodeServices {
    let nodeName: String
    private let store: KVStore?
    private let memory = NIOLockedValueBox<[String: [UInt8]]>([:])

    init(nodeName: String, path: String?, initial: [String: String]) throws {
        self.nodeName = nodeName
        self.store = try path.map { try KVStore(path: $0) }
        for (key, value) in initial { try self.localPut(key, Array(value.utf8)) }
    }

    func localGet(_ key: String) -> [UInt8]? {
        guard let store = self.store else { return self.memory.withLockedValue { $0[key] } }
        return (try? store.getNow(key))?.value
    }

    func localPut(_ key: String, _ value: [UInt8]) throws {
        guard let store = self.store else {
            self.memory.withLockedValue { $0[key] = value }
            return
        }
        // The guest's thread waits for the write to be durable, as a blocking system call would.
        let done = NIOLockedValueBox<Result<KVWritten, any Error>?>(nil)
        let condition = NSCondition()
        store.enqueue(KVWrite(key: key, operation: .put(value: value))) { result in
            condition.lock()
            done.withLockedValue { $0 = result }
            condition.signal()
            condition.unlock()
        }
        condition.lock()
        while done.withLockedValue({ $0 == nil }) { condition.wait() }
        condition.unlock()
        _ = try done.withLockedValue { $0! }.get()
    }

    func close() {
        try? self.store?.close()
    }
}
