import Synchronization

/// Every committed key and value of a ``KVStore``, in memory, so that a get is a dictionary
/// look-up rather than a SQLite read — Redis's speed for reads, with SQLite's durability for writes.
///
/// It stays exact because one writer thread commits every write: after each commit, and before
/// any of its writes is acknowledged, the writer applies the batch here. A get that starts after
/// a write's acknowledgement therefore sees it; one that overlaps the write sees it or not, as
/// with any linearizable store. Past ``limit`` bytes (or after a commit whose outcome is unknown)
/// the mirror turns itself off and gets read the file again.
final class KVMirror: Sendable {
    private static let entryOverhead = 64

    /// Keys and values held at most, in bytes (with a per-entry overhead).
    let limit: Int

    private struct Contents: ~Copyable {
        var values: [String: KVValue] = [:]
        var bytes = 0
        var on = true
    }

    private let contents = Mutex(Contents())

    init(limit: Int) {
        self.limit = limit
    }

    /// The mirrored value of `key` (version 0 when absent), or nil when the mirror is off.
    func get(_ key: String) -> KVValue? {
        self.contents.withLock { contents in
            guard contents.on else { return nil }
            return contents.values[key] ?? KVValue(value: nil, version: 0)
        }
    }

    /// Whether it holds every key: off past its limit, or after a commit whose outcome is unknown.
    var isOn: Bool { self.contents.withLock { $0.on } }

    /// Whether `bytes` more (see ``size(_:_:)``) keep it within its limit.
    func hasRoom(for bytes: Int) -> Bool {
        self.contents.withLock { $0.on && $0.bytes + bytes <= self.limit }
    }

    /// Loads one entry of the file at open; returns false once past the limit the mirror is off.
    func load(_ key: String, _ value: KVValue) -> Bool {
        self.contents.withLock { contents in
            if contents.on { self.set(key, value, in: &contents) }
            return contents.on
        }
    }

    /// Applies committed writes, in commit order.
    func apply(_ committed: [(KVWrite, KVWritten)]) {
        self.contents.withLock { contents in
            guard contents.on else { return }
            for (write, written) in committed where written.applied {
                switch write.operation {
                case .put(let value), .compareAndSet(_, let value):
                    self.set(write.key, KVValue(value: value, version: written.version), in: &contents)
                case .delete:
                    if let old = contents.values.removeValue(forKey: write.key) {
                        contents.bytes -= Self.size(write.key, old)
                    }
                }
                if !contents.on { return }
            }
        }
    }

    /// A commit failed: whether it reached the file is unknown, so the mirror can no longer vouch.
    func turnOff() {
        self.contents.withLock { Self.turnOff(&$0) }
    }

    private static func turnOff(_ contents: inout Contents) {
        contents.on = false
        contents.values = [:]
        contents.bytes = 0
    }

    private func set(_ key: String, _ value: KVValue, in contents: inout Contents) {
        if let old = contents.values.updateValue(value, forKey: key) { contents.bytes -= Self.size(key, old) }
        contents.bytes += Self.size(key, value)
        if contents.bytes > self.limit { Self.turnOff(&contents) }
    }

    private static func size(_ key: String, _ value: KVValue) -> Int {
        Self.size(key, value.value ?? [])
    }

    /// What an entry counts toward the limit.
    static func size(_ key: String, _ value: [UInt8]) -> Int {
        key.utf8.count + value.count + Self.entryOverhead
    }
}
