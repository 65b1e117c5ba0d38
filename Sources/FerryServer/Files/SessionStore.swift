import FerryPosix
import NIOConcurrencyHelpers
import NIOCore

/// Soft state: per-client values under leases, kept in memory only.
///
/// Every access renews an entry's lease; an entry not touched for its ttl is gone. The store
/// holds at most `capacity` entries: when full, expired entries go first, then the ones closest
/// to expiring. Nothing here is written down — a server that restarts (or calls ``removeAll()``)
/// starts empty, and its clients simply get new sessions: soft state may be lost at any moment
/// without the server answering wrongly.
public final class SessionStore<Value: Sendable>: Sendable {
    private struct Entry {
        var value: Value
        var expiresAt: UInt64
    }

    /// A session id as its 128 bits: a key of 16 bytes in place, where its 32-character text
    /// would be a string allocated per session (a table of 100,000 cookieless clients is most of
    /// a file server's memory).
    private struct Key: Hashable {
        var high: UInt64
        var low: UInt64

        static func random() -> Key {
            var generator = SystemRandomNumberGenerator()
            return Key(high: generator.next(), low: generator.next())
        }

        /// The key of a cookie's id: 32 lowercase hex digits; anything else names no session.
        init?(_ text: String) {
            let utf8 = text.utf8
            let isDigit: (UInt8) -> Bool = { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
            guard utf8.count == 32, utf8.allSatisfy(isDigit), let high = UInt64(text.prefix(16), radix: 16),
                let low = UInt64(text.suffix(16), radix: 16)
            else { return nil }
            self.init(high: high, low: low)
        }

        init(high: UInt64, low: UInt64) {
            self.high = high
            self.low = low
        }

        var text: String { Self.hex(self.high) + Self.hex(self.low) }

        private static func hex(_ word: UInt64) -> String {
            let digits = String(word, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
    }

    public let ttl: Duration
    public let capacity: Int
    private let entries = NIOLockedValueBox<[Key: Entry]>([:])
    private let clock: @Sendable () -> UInt64

    /// - Parameter clock: monotonic nanoseconds; tests pass their own.
    public init(
        ttl: Duration,
        capacity: Int = 100_000,
        clock: @escaping @Sendable () -> UInt64 = { NIODeadline.now().uptimeNanoseconds }
    ) {
        self.ttl = ttl
        self.capacity = max(capacity, 1)
        self.clock = clock
    }

    /// Applies `update` to the live session `id`, or to a new session when `id` is nil, unknown or
    /// expired; renews its lease. Returns the session's id (new when it had to be created), the
    /// updated value, and whether it is new.
    public func update(
        _ id: String?,
        creating initial: @autoclosure () -> Value,
        _ update: (inout Value) -> Void
    ) -> (id: String, value: Value, isNew: Bool) {
        let now = self.clock()
        let expiresAt = now + self.ttl.wholeNanoseconds
        return self.entries.withLockedValue { entries in
            let key = id.flatMap(Key.init)
            if let id, let key, var entry = entries[key], entry.expiresAt > now {
                update(&entry.value)
                entry.expiresAt = expiresAt
                entries[key] = entry
                return (id, entry.value, false)
            }
            if let key { entries[key] = nil }
            if entries.count >= self.capacity { Self.makeRoom(in: &entries, now: now, capacity: self.capacity) }
            var value = initial()
            update(&value)
            let newKey = Key.random()
            entries[newKey] = Entry(value: value, expiresAt: expiresAt)
            return (newKey.text, value, true)
        }
    }

    /// The live value of session `id`, without renewing it.
    public func value(of id: String) -> Value? {
        let now = self.clock()
        guard let key = Key(id) else { return nil }
        return self.entries.withLockedValue { entries in
            guard let entry = entries[key], entry.expiresAt > now else { return nil }
            return entry.value
        }
    }

    /// How many sessions are held (some may have expired and not been swept yet).
    public var count: Int { self.entries.withLockedValue { $0.count } }

    /// Forgets every session, as a crash would.
    public func removeAll() {
        self.entries.withLockedValue { $0 = [:] }
    }

    private static func makeRoom(in entries: inout [Key: Entry], now: UInt64, capacity: Int) {
        entries = entries.filter { $0.value.expiresAt > now }
        guard entries.count >= capacity else { return }
        // Still full of live sessions: drop the tenth closest to expiring.
        let victims = entries.sorted { $0.value.expiresAt < $1.value.expiresAt }.prefix(max(capacity / 10, 1))
        for victim in victims { entries[victim.key] = nil }
    }
}
