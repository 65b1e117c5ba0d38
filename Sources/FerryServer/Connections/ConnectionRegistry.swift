import FerryHTTP
import FerryPosix
import Logging
import NIOConcurrencyHelpers
import Synchronization

/// Every open client connection of one server, and the request each has in progress — the table
/// that out-of-band cancels (control endpoint or TCP urgent data) look requests up in.
///
/// Connection ids count up from 1 per server; request ids count up from 1 per connection. Both
/// are reported to the client in the `Ferry-Connection-Id` and `Ferry-Request-Id` headers.
public final class ConnectionRegistry: Sendable {
    private struct Entry {
        var descriptor: Int32
        /// The client's address, counted against ``sources`` while the connection is open.
        var source: [UInt8]
        var lastRequestID: UInt64 = 0
        var current: (id: UInt64, flag: CancellationFlag)?
    }

    private struct Shard {
        var entries: [UInt64: Entry] = [:]
        var byDescriptor: [Int32: UInt64] = [:]
    }

    /// The table in shards by connection id, each behind its own lock: every request begins and
    /// ends here, and with one lock the event loops queued on its futex (0.2 futex calls a
    /// request under `wrk -t2 -c64` on a 1 KiB file).
    private let shards: [NIOLockedValueBox<Shard>]
    private static let shardCount = 16
    private let nextConnectionID = Atomic<UInt64>(1)
    /// The cap on connections per client address.
    public let sources: SourceLimit

    /// - Parameter maxPerSource: connections one client address may hold open; 0 for no cap.
    public init(maxPerSource: Int = 0) {
        self.sources = SourceLimit(maximum: maxPerSource)
        self.shards = (0..<Self.shardCount).map { _ in NIOLockedValueBox(Shard()) }
    }

    private func shard(_ connection: UInt64) -> NIOLockedValueBox<Shard> {
        self.shards[Int(connection % UInt64(Self.shardCount))]
    }

    /// Registers a new connection on socket `descriptor` and returns its id; `nil` when its
    /// client's address is at the cap, in which case the connection was answered 503 and closed.
    public func open(descriptor: Int32, logger: Logger) -> UInt64? {
        // Only a cap needs the address: without one, no getpeername(2) per connection.
        let source = self.sources.maximum > 0 ? PeerAddress.peer(of: descriptor) : nil
        guard self.sources.admit(client: descriptor, from: source, logger: logger) else { return nil }
        let id = self.nextConnectionID.add(1, ordering: .relaxed).oldValue
        self.shard(id).withLockedValue { shard in
            shard.entries[id] = Entry(descriptor: descriptor, source: source?.bytes ?? [])
            shard.byDescriptor[descriptor] = id
        }
        return id
    }

    /// Forgets a connection; a request still in progress on it is cancelled.
    public func close(connection: UInt64) {
        let removed = self.shard(connection).withLockedValue { shard -> Entry? in
            guard let entry = shard.entries.removeValue(forKey: connection) else { return nil }
            if shard.byDescriptor[entry.descriptor] == connection {
                shard.byDescriptor[entry.descriptor] = nil
            }
            return entry
        }
        guard let removed else { return }
        self.sources.release(removed.source)
        removed.current?.flag.cancel()
    }

    /// Starts the next request on `connection`.
    /// - Returns: the request's id and the flag that cancels it.
    public func begin(connection: UInt64) -> (requestID: UInt64, flag: CancellationFlag) {
        let flag = CancellationFlag()
        let id = self.shard(connection).withLockedValue { shard -> UInt64 in
            guard var entry = shard.entries[connection] else { return 0 }
            entry.lastRequestID += 1
            entry.current = (entry.lastRequestID, flag)
            shard.entries[connection] = entry
            return entry.lastRequestID
        }
        return (id, flag)
    }

    /// Marks request `requestID` of `connection` finished.
    public func end(connection: UInt64, requestID: UInt64) {
        self.shard(connection).withLockedValue { shard in
            if shard.entries[connection]?.current?.id == requestID {
                shard.entries[connection]?.current = nil
            }
        }
    }

    /// Cancels request `requestID` of `connection` if it is in progress.
    /// - Returns: whether a running request was cancelled.
    public func cancel(connection: UInt64, requestID: UInt64) -> Bool {
        let flag = self.shard(connection).withLockedValue { shard in
            shard.entries[connection]?.current.flatMap { $0.id == requestID ? $0.flag : nil }
        }
        return flag?.cancel() ?? false
    }

    /// Cancels whatever request is in progress on the connection using socket `descriptor`.
    /// - Returns: the connection and request ids cancelled, if any.
    public func cancelCurrent(descriptor: Int32) -> (connection: UInt64, requestID: UInt64)? {
        // The descriptor's connection is in one shard: the first that knows it has the answer.
        for shard in self.shards {
            let found = shard.withLockedValue { shard in
                shard.byDescriptor[descriptor].map { (connection: $0, current: shard.entries[$0]?.current) }
            }
            guard let found else { continue }
            guard let current = found.current, current.flag.cancel() else { return nil }
            return (found.connection, current.id)
        }
        return nil
    }

    /// The sockets of every open connection.
    public var descriptors: [Int32] { self.shards.flatMap { $0.withLockedValue { Array($0.byDescriptor.keys) } } }

    /// The number of open connections.
    public var count: Int { self.shards.reduce(0) { $0 + $1.withLockedValue { $0.entries.count } } }
}
