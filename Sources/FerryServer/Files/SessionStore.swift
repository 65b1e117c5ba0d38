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

    public let ttl: Duration
    public let capacity: Int
    private let entries = NIOLockedValueBox<[String: Entry]>([:])
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
            if let id, var entry = entries[id], entry.expiresAt > now {
                update(&entry.value)
                entry.expiresAt = expiresAt
                entries[id] = entry
                return (id, entry.value, false)
            }
            if let id { entries[id] = nil }
            if entries.count >= self.capacity { Self.makeRoom(in: &entries, now: now, capacity: self.capacity) }
            var value = initial()
            update(&value)
            let newID = Self.newID()
            entries[newID] = Entry(value: value, expiresAt: expiresAt)
            return (newID, value, true)
        }
    }

    /// The live value of session `id`, without renewing it.
    public func value(of id: String) -> Value? {
        let now = self.clock()
        return self.entries.withLockedValue { entries in
            guard let entry = entries[id], entry.expiresAt > now else { return nil }
            return entry.value
        }
    }

    /// How many sessions are held (some may have expired and not been swept yet).
    public var count: Int { self.entries.withLockedValue { $0.count } }

    /// Forgets every session, as a crash would.
    public func removeAll() {
        self.entries.withLockedValue { $0 = [:] }
    }

    private static func makeRoom(in entries: inout [String: Entry], now: UInt64, capacity: Int) {
        entries = entries.filter { $0.value.expiresAt > now }
        guard entries.count >= capacity else { return }
        // Still full of live sessions: drop the tenth closest to expiring.
        let victims = entries.sorted { $0.value.expiresAt < $1.value.expiresAt }.prefix(max(capacity / 10, 1))
        for victim in victims { entries[victim.key] = nil }
    }

    /// 128 random bits, hex: not guessable, so a client cannot take another's session.
    private static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let word = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - word.count) + word
        }.joined()
    }
}
