import NIOConcurrencyHelpers

/// A cap on the connections one source address may hold open at once (nginx's `limit_conn` per
/// `$binary_remote_addr`, HAProxy's `sc_conn_cur` with a stick table): one client cannot take all
/// of a server's descriptors. Shared by a server's accepting threads.
public final class SourceLimit: Sendable {
    public enum Admission: Equatable, Sendable {
        case admitted
        /// The source is at the cap; `first` is true for its first refusal since it was below it,
        /// so that a flood is logged once, not once per connection.
        case refused(first: Bool)
    }

    /// Connections per source; 0 means no cap.
    public let maximum: Int
    private let open = NIOLockedValueBox<[[UInt8]: (count: Int, refusing: Bool)]>([:])

    public init(maximum: Int) {
        self.maximum = maximum
    }

    /// Counts a new connection from `source` (an address's bytes), unless the source is at the cap.
    public func admit(_ source: [UInt8]) -> Admission {
        guard self.maximum > 0 else { return .admitted }
        return self.open.withLockedValue { open in
            var entry = open[source] ?? (0, false)
            defer { open[source] = entry }
            guard entry.count < self.maximum else {
                defer { entry.refusing = true }
                return .refused(first: !entry.refusing)
            }
            entry.count += 1
            return .admitted
        }
    }

    /// A connection ``admit(_:)`` admitted from `source` closed.
    public func release(_ source: [UInt8]) {
        guard self.maximum > 0 else { return }
        self.open.withLockedValue { open in
            guard let entry = open[source] else { return }
            open[source] = entry.count > 1 ? (entry.count - 1, false) : nil
        }
    }

    /// Connections open from `source`.
    public func count(of source: [UInt8]) -> Int {
        self.open.withLockedValue { $0[source]?.count ?? 0 }
    }
}
